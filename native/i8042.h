/* i8042 keyboard controller: data port 0x60, status/command port 0x64; the keyboard on IRQ 1 and
 * a PS/2 mouse (ps2mouse.c) on the auxiliary port, IRQ 12. Scancodes and mouse motion come from
 * the agent; command 0xFE (pulse reset line) resets the guest. */
#ifndef QVMM_I8042_H
#define QVMM_I8042_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "events.h"
#include "iobus.h"
#include "json.h"
#include "statebuf.h"
#include "ps2mouse.h"

#define I8042_DATA_PORT    0x60
#define I8042_COMMAND_PORT 0x64
#define I8042_KBD_IRQ      1
#define I8042_AUX_IRQ      12
#define I8042_QUEUE        256

struct i8042_counters {
	uint64_t scancodes_in, scancodes_dropped, irqs, commands, resets;
	uint64_t aux_irqs;		/* IRQ 12 rises */
	uint64_t aux_bytes;		/* bytes the guest sent the mouse (0xD4) */
};

/* Where the byte in the output buffer comes from. */
enum i8042_source { I8042_SRC_NONE, I8042_SRC_CTRL, I8042_SRC_KBD, I8042_SRC_AUX };

struct i8042 {
	struct iobus *bus;		/* where its ports are registered */
	struct irq_line irq;		/* IRQ 1: keyboard bytes */
	struct irq_line aux_irq;	/* IRQ 12: mouse bytes */
	struct ps2mouse *mouse;		/* on the auxiliary port */
	struct events *events;		/* gets the RESET event */
	struct stop_hook reset;		/* the reset line: stops the guest */
	pthread_mutex_t lock;
	uint8_t queue[I8042_QUEUE];
	size_t q_head, q_count;
	uint8_t cmd_byte;		/* controller configuration byte */
	uint8_t pending_cmd;		/* command waiting for its data byte, or 0 */
	int out_from_ctrl;		/* output buffer holds a byte the controller put there: */
	uint8_t ctrl_reply;		/* its value */
	enum i8042_source ctrl_src;	/* a reply (CTRL), or written with 0xD2 (KBD) / 0xD3 (AUX) */
	enum i8042_source src;		/* otherwise: whose queue head it shows (NONE: empty) */
	int irq_level, aux_irq_level;
	struct i8042_counters count;
};

/* Creates the controller with its mouse and claims ports 0x60 and 0x64 on pio. NULL with err
 * ("i8042: ...") on failure. */
struct i8042 *i8042_init(struct iobus *pio, struct irq_line irq, struct irq_line aux_irq,
			 struct events *events, struct stop_hook reset, char *err, size_t errlen);
/* Releases its ports and frees it; NULL is fine. */
void i8042_teardown(struct i8042 *k);
/* Queues scancodes from the agent; returns how many fitted. */
size_t i8042_input(struct i8042 *k, const uint8_t *codes, size_t len);
/* Mouse motion from the agent (ps2mouse_motion): returns the packets queued, and whether the
 * mouse is reporting at all in *reporting (0 packets while reporting = no room, try again). */
unsigned i8042_mouse_motion(struct i8042 *k, int32_t dx, int32_t dy, int32_t wheel,
			    uint32_t buttons, int *reporting);
/* Appends its counters: {"scancodesIn":N,"scancodesDropped":N,"irqs":N,"commands":N,"resets":N,
 * "auxIrqs":N,"auxBytes":N}. The mouse's own are ps2mouse_stats_json(k->mouse). */
void i8042_stats_json(struct i8042 *k, struct sbuf *sb);

/* Saved state (vmstate.c, PROTOCOL.md "VM state"): i8042_save appends the device's state;
 * i8042_load checks a saved state (commit 0: nothing changes) or checks and applies it
 * (commit 1) with its mouse's (ps2mouse_save), both interrupt lines set to the saved levels. -1 with err on a bad state. */
void i8042_save(struct i8042 *k, struct state_out *o);
int i8042_load(struct i8042 *k, const uint8_t *p, size_t len, int commit, char *err, size_t errlen);

#endif
