/* i8042 keyboard controller: data port 0x60, status/command port 0x64, IRQ 1. Scancodes come
 * from the agent; command 0xFE (pulse reset line) resets the guest. */
#ifndef QVMM_I8042_H
#define QVMM_I8042_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "events.h"
#include "iobus.h"
#include "json.h"

#define I8042_DATA_PORT    0x60
#define I8042_COMMAND_PORT 0x64
#define I8042_KBD_IRQ      1
#define I8042_QUEUE        256

struct i8042_counters {
	uint64_t scancodes_in, scancodes_dropped, irqs, commands, resets;
};

struct i8042 {
	struct iobus *bus;		/* where its ports are registered */
	struct irq_line irq;
	struct events *events;		/* gets the RESET event */
	struct stop_hook reset;		/* the reset line: stops the guest */
	pthread_mutex_t lock;
	uint8_t queue[I8042_QUEUE];
	size_t q_head, q_count;
	uint8_t cmd_byte;		/* controller configuration byte */
	uint8_t pending_cmd;		/* command waiting for its data byte, or 0 */
	int out_from_ctrl;		/* output buffer holds a controller reply */
	uint8_t ctrl_reply;
	int irq_level;
	struct i8042_counters count;
};

/* Creates the controller and claims ports 0x60 and 0x64 on pio. NULL with err ("i8042: ...")
 * on failure. */
struct i8042 *i8042_init(struct iobus *pio, struct irq_line irq, struct events *events,
			 struct stop_hook reset, char *err, size_t errlen);
/* Releases its ports and frees it; NULL is fine. */
void i8042_teardown(struct i8042 *k);
/* Queues scancodes from the agent; returns how many fitted. */
size_t i8042_input(struct i8042 *k, const uint8_t *codes, size_t len);
/* Appends its counters: {"scancodesIn":N,"scancodesDropped":N,"irqs":N,"commands":N,"resets":N}. */
void i8042_stats_json(struct i8042 *k, struct sbuf *sb);

#endif
