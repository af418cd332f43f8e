/* The debug device at ports 0x500-0x50f (see guest/guest-abi.h): result reports, power-off
 * request/acknowledgement, the command mailbox with its doorbell IRQ, and the bench port. */
#ifndef QVMM_DEBUGPORT_H
#define QVMM_DEBUGPORT_H

#include <stdint.h>

#include "guest-abi.h"
#include "vm.h"

#define DEBUG_MAILBOX 256

struct debugport_counters {
	uint64_t results, bench, commands_in, commands_out, power;
};

struct debugport {
	struct vm *vm;
	pthread_mutex_t lock;
	uint32_t mailbox[DEBUG_MAILBOX];
	unsigned mb_head, mb_count;
	int poweroff_requested;		/* the host asked the guest to power off */
	int irq_level;
	struct debugport_counters count;
};

struct debugport *debugport_init(struct vm *vm);
void debugport_teardown(struct debugport *d);
/* Queues a command word for the guest; -1 if the mailbox is full. */
int debugport_command(struct debugport *d, uint32_t word);
/* Asks the guest to power off (queues QG_CMD_HOST_POWEROFF and rings the doorbell). */
void debugport_request_poweroff(struct debugport *d);

#endif
