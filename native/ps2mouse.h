/* PS/2 mouse on the i8042's auxiliary port: the mouse's command set (reset, defaults, enable,
 * sample rate, resolution, scaling, status, id, stream/remote, read data, wrap, resend), its
 * movement packets (3 bytes, or 4 with a wheel after the IntelliMouse sequence) and a bounded
 * queue of the bytes it has to send. It has no ports and no lock: the i8042 moves its bytes and
 * calls it under its own lock. Movement comes from the agent in screen coordinates (dy positive
 * down) and leaves in PS/2's (dy positive up). */
#ifndef QVMM_PS2MOUSE_H
#define QVMM_PS2MOUSE_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "statebuf.h"
#include "proto.h"

#define PS2MOUSE_QUEUE      512		/* bytes waiting for the guest */
#define PS2MOUSE_MAX_DELTA  PROTO_MOUSE_MAX_DELTA	/* |dx|, |dy| of one motion */
#define PS2MOUSE_MAX_WHEEL  PROTO_MOUSE_MAX_WHEEL	/* |wheel| of one motion */
#define PS2MOUSE_BUTTONS    PROTO_MOUSE_BUTTONS		/* bit 0 left, 1 right, 2 middle */

struct ps2mouse_counters {
	uint64_t motions;		/* motions from the agent */
	uint64_t motions_ignored;	/* ... while the mouse was not reporting (stream mode off) */
	uint64_t packets;		/* movement packets queued */
	uint64_t packets_dropped;	/* ... refused for lack of room in the queue */
	uint64_t commands;		/* command bytes from the guest (arguments not counted) */
	uint64_t bad_commands;		/* commands and arguments answered with 0xFE (resend) */
	uint64_t resets;		/* 0xFF */
};

struct ps2mouse {
	uint8_t queue[PS2MOUSE_QUEUE];
	size_t q_head, q_count;
	uint8_t pending;		/* command waiting for its argument (0xF3, 0xE8), or 0 */
	uint8_t id;			/* 0, or 3 once the wheel is unlocked */
	uint8_t rate, resolution;
	int scaling21, reporting, remote, wrap;
	uint8_t rates[3];		/* the last consecutive sample rates, newest last */
	uint32_t buttons;		/* as last reported by the agent */
	int32_t acc_x, acc_y, acc_z;	/* remote mode: movement not yet read, PS/2 directions */
	uint8_t last[4];		/* the last movement packet, for Resend */
	size_t last_len;
	struct ps2mouse_counters count;
};

/* A mouse after power-on: id 0, stream mode, reporting off, 100 samples/s, 4 counts/mm, 1:1.
 * NULL with err ("ps2mouse: ...") on failure. */
struct ps2mouse *ps2mouse_init(char *err, size_t errlen);
void ps2mouse_teardown(struct ps2mouse *m);

/* A byte from the guest (through the controller's 0xD4). The mouse drops the packets it has not
 * delivered yet, as a real one abandons its stream to answer, so its reply is the next byte. */
void ps2mouse_write(struct ps2mouse *m, uint8_t byte);
/* Movement from the agent: dx, dy in screen coordinates (dy positive down), wheel positive
 * towards the user, buttons bit 0 left, 1 right, 2 middle (values beyond the limits above are
 * clamped). In stream mode with reporting on, queues as many packets as the deltas need (all of
 * them or, without room, none) and returns how many; otherwise returns 0 (remote mode keeps the
 * movement for 0xEB). */
unsigned ps2mouse_motion(struct ps2mouse *m, int32_t dx, int32_t dy, int32_t wheel,
			 uint32_t buttons);
/* Whether motions become packets now (stream mode, reporting enabled). */
int ps2mouse_reporting(const struct ps2mouse *m);

/* The byte queue, read by the controller: how many, the first, take the first. */
size_t ps2mouse_pending(const struct ps2mouse *m);
uint8_t ps2mouse_peek(const struct ps2mouse *m);
uint8_t ps2mouse_pop(struct ps2mouse *m);

/* Appends {"motions":N,"motionsIgnored":N,"packets":N,"packetsDropped":N,"commands":N,
 * "badCommands":N,"resets":N,"id":N,"reporting":bool}. */
void ps2mouse_stats_json(struct ps2mouse *m, struct sbuf *sb);

/* Saved state (inside the i8042's): ps2mouse_save appends it; ps2mouse_load reads it from `in`
 * into `m` (a scratch copy when only checking). -1 with err on a bad state. */
void ps2mouse_save(const struct ps2mouse *m, struct state_out *o);
int ps2mouse_load(struct ps2mouse *m, struct state_in *in, char *err, size_t errlen);

#endif
