/* 16550A UART at 0x3f8 (COM1), IRQ 4. Output goes to a bounded ring (scrollback + streaming
 * to the agent); input comes from the agent. */
#ifndef QVMM_SERIAL_H
#define QVMM_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"
#include "vm.h"

#define SERIAL_BASE      0x3f8
#define SERIAL_IRQ       4
#define SERIAL_RING_SIZE (1u << 20)
#define SERIAL_RX_SIZE   4096

struct serial_counters {
	uint64_t tx_bytes, rx_bytes, rx_dropped, irqs, reads, writes;
};

struct serial {
	struct vm *vm;
	pthread_mutex_t lock;
	uint8_t ier, iir_thre, lcr, mcr, lsr_extra, msr, scr, dll, dlm, fcr;
	int irq_level;
	uint8_t rx[SERIAL_RX_SIZE];
	size_t rx_head, rx_count;
	struct ring out;
	struct serial_counters count;
};

struct serial *serial_init(struct vm *vm);
void serial_teardown(struct serial *s);
/* Feeds input bytes from the agent; returns how many fitted in the receive buffer. */
size_t serial_input(struct serial *s, const uint8_t *data, size_t len);

#endif
