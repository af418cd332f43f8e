/* 16550A UART at 0x3f8 (COM1), IRQ 4. Output goes to a bounded ring (scrollback + streaming
 * to the agent); input comes from the agent. */
#ifndef QVMM_SERIAL_H
#define QVMM_SERIAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "events.h"
#include "iobus.h"
#include "json.h"
#include "statebuf.h"
#include "ring.h"

#define SERIAL_BASE      0x3f8
#define SERIAL_IRQ       4
#define SERIAL_RING_SIZE (1u << 20)
#define SERIAL_RX_SIZE   4096

struct serial_counters {
	uint64_t tx_bytes, rx_bytes, rx_dropped, irqs, reads, writes;
};

struct serial {
	struct iobus *bus;		/* where its ports are registered */
	struct irq_line irq;
	struct events *events;		/* rung when output is written */
	pthread_mutex_t lock;
	uint8_t ier, iir_thre, lcr, mcr, lsr_extra, msr, scr, dll, dlm, fcr;
	int irq_level;
	uint8_t rx[SERIAL_RX_SIZE];
	size_t rx_head, rx_count;
	struct ring out;
	struct serial_counters count;
};

/* Creates the UART and claims its ports on pio. NULL with err ("serial: ...") on failure. */
struct serial *serial_init(struct iobus *pio, struct irq_line irq, struct events *events,
			   char *err, size_t errlen);
/* Releases its ports and frees it; NULL is fine. */
void serial_teardown(struct serial *s);
/* Feeds input bytes from the agent; returns how many fitted in the receive buffer. */
size_t serial_input(struct serial *s, const uint8_t *data, size_t len);
/* Appends its counters: {"txBytes":N,"rxBytes":N,"rxDropped":N,"irqs":N,"reads":N,"writes":N}. */
void serial_stats_json(struct serial *s, struct sbuf *sb);

/* Saved state (vmstate.c, PROTOCOL.md "VM state"): serial_save appends the device's state;
 * serial_load checks a saved state (commit 0: nothing changes) or checks and applies it
 * (commit 1), its interrupt line set to the saved level. -1 with err on a bad state. */
void serial_save(struct serial *s, struct state_out *o);
int serial_load(struct serial *s, const uint8_t *p, size_t len, int commit, char *err, size_t errlen);

#endif
