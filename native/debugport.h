/* The debug device at ports 0x500-0x50f (see guest/guest-abi.h): result reports, power-off
 * request/acknowledgement, the command mailbox with its doorbell IRQ, and the bench port. */
#ifndef QVMM_DEBUGPORT_H
#define QVMM_DEBUGPORT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "events.h"
#include "guest-abi.h"
#include "iobus.h"
#include "json.h"
#include "statebuf.h"

#define DEBUG_MAILBOX 256

struct debugport_counters {
	uint64_t results, bench, commands_in, commands_out, power;
};

struct debugport {
	struct iobus *bus;		/* where its ports are registered */
	struct irq_line doorbell;	/* raised while the mailbox is not empty */
	struct events *events;		/* gets DEBUG and POWEROFF events */
	struct stop_hook power_off;	/* the guest asked for or acknowledged power-off */
	pthread_mutex_t lock;
	uint32_t mailbox[DEBUG_MAILBOX];
	unsigned mb_head, mb_count;
	int poweroff_requested;		/* the host asked the guest to power off */
	int irq_level;
	struct debugport_counters count;
};

/* Creates the device and claims its ports on pio. NULL with err ("debug port: ...") on failure. */
struct debugport *debugport_init(struct iobus *pio, struct irq_line doorbell, struct events *events,
				 struct stop_hook power_off, char *err, size_t errlen);
/* Releases its ports and frees it; NULL is fine. */
void debugport_teardown(struct debugport *d);
/* Queues a command word for the guest; -1 if the mailbox is full. */
int debugport_command(struct debugport *d, uint32_t word);
/* Asks the guest to power off (queues QG_CMD_HOST_POWEROFF and rings the doorbell). */
void debugport_request_poweroff(struct debugport *d);
/* Appends its counters: {"results":N,"bench":N,"commandsIn":N,"commandsOut":N,"power":N}. */
void debugport_stats_json(struct debugport *d, struct sbuf *sb);

/* Saved state (vmstate.c, PROTOCOL.md "VM state"): debugport_save appends the device's state;
 * debugport_load checks a saved state (commit 0: nothing changes) or checks and applies it
 * (commit 1), the doorbell set to the saved level. -1 with err on a bad state. */
void debugport_save(struct debugport *d, struct state_out *o);
int debugport_load(struct debugport *d, const uint8_t *p, size_t len, int commit, char *err, size_t errlen);

#endif
