/* PS/2 mouse: the device behind the i8042's auxiliary port (see ps2mouse.h). */
#include "ps2mouse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ACK        0xfa
#define RESEND     0xfe
#define SELF_TEST  0xaa		/* after reset: self-test passed */

#define CMD_SCALE11     0xe6
#define CMD_SCALE21     0xe7
#define CMD_RESOLUTION  0xe8
#define CMD_STATUS      0xe9
#define CMD_STREAM      0xea
#define CMD_READ_DATA   0xeb
#define CMD_RESET_WRAP  0xec
#define CMD_WRAP        0xee
#define CMD_REMOTE      0xf0
#define CMD_GET_ID      0xf2
#define CMD_RATE        0xf3
#define CMD_ENABLE      0xf4
#define CMD_DISABLE     0xf5
#define CMD_DEFAULTS    0xf6
#define CMD_RESEND      0xfe
#define CMD_RESET       0xff

#define PKT_ALWAYS  0x08	/* bit 3 of byte 0 is always set: how a driver finds packet starts */
#define PKT_X_SIGN  0x10
#define PKT_Y_SIGN  0x20
#define PKT_X_OVER  0x40
#define PKT_Y_OVER  0x80

#define ACC_LIMIT   (1 << 20)	/* remote mode: bound on movement kept for 0xEB */

static void put(struct ps2mouse *m, uint8_t v)
{
	if (m->q_count < PS2MOUSE_QUEUE)
		m->queue[(m->q_head + m->q_count++) % PS2MOUSE_QUEUE] = v;
}

static void flush(struct ps2mouse *m)
{
	m->q_head = m->q_count = 0;
}

static int32_t clamp(int32_t v, int32_t lo, int32_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static int32_t magnitude(int32_t v)
{
	return v < 0 ? -v : v;
}

static size_t packet_len(const struct ps2mouse *m)
{
	return m->id == 3 ? 4 : 3;
}

static void set_defaults(struct ps2mouse *m)
{
	m->rate = 100;
	m->resolution = 2;		/* 4 counts/mm */
	m->scaling21 = 0;
	m->reporting = 0;
	m->acc_x = m->acc_y = m->acc_z = 0;
}

/* 2:1 scaling as a mouse applies it to each report: 1, 1, 3, 6, 9 for 1..5, then double. */
static int32_t scaled(const struct ps2mouse *m, int32_t v)
{
	static const int32_t small[6] = { 0, 1, 1, 3, 6, 9 };
	int32_t a = magnitude(v);

	if (!m->scaling21)
		return v;
	a = a <= 5 ? small[a] : 2 * a;
	return v < 0 ? -a : a;
}

/* One movement packet of x, y (PS/2 directions: y positive up) and z; values beyond what the
 * 9-bit fields hold are clamped and flagged with the overflow bits. */
static void encode(struct ps2mouse *m, int32_t x, int32_t y, int32_t z, uint8_t *p)
{
	uint8_t b0 = (uint8_t)(PKT_ALWAYS | (m->buttons & PS2MOUSE_BUTTONS));

	x = scaled(m, x);
	y = scaled(m, y);
	if (x < -256 || x > 255)
		b0 |= PKT_X_OVER;
	if (y < -256 || y > 255)
		b0 |= PKT_Y_OVER;
	x = clamp(x, -256, 255);
	y = clamp(y, -256, 255);
	if (x < 0)
		b0 |= PKT_X_SIGN;
	if (y < 0)
		b0 |= PKT_Y_SIGN;
	p[0] = b0;
	p[1] = (uint8_t)(x & 0xff);
	p[2] = (uint8_t)(y & 0xff);
	p[3] = (uint8_t)(clamp(z, -8, 7) & 0xff);	/* the wheel's 4-bit range */
}

static void put_packet(struct ps2mouse *m, const uint8_t *p)
{
	size_t n = packet_len(m);

	for (size_t i = 0; i < n; i++)
		put(m, p[i]);
	memcpy(m->last, p, n);
	m->last_len = n;
}

static void status(struct ps2mouse *m)
{
	uint8_t b = (uint8_t)((m->remote ? 0x40 : 0) | (m->reporting ? 0x20 : 0) |
			      (m->scaling21 ? 0x10 : 0));

	/* the status byte orders the buttons differently from a packet: left 2, middle 1, right 0 */
	b |= (uint8_t)((m->buttons & 1 ? 0x04 : 0) | (m->buttons & 4 ? 0x02 : 0) |
		       (m->buttons & 2 ? 0x01 : 0));
	put(m, ACK);
	put(m, b);
	put(m, m->resolution);
	put(m, m->rate);
}

/* Three Set Sample Rate commands in a row, 200 then 100 then 80: an IntelliMouse answers id 3
 * from then on and adds the wheel byte to its packets. */
static void sample_rate(struct ps2mouse *m, uint8_t rate)
{
	m->rate = rate;
	m->rates[0] = m->rates[1];
	m->rates[1] = m->rates[2];
	m->rates[2] = rate;
	if (m->rates[0] == 200 && m->rates[1] == 100 && m->rates[2] == 80)
		m->id = 3;
}

static int valid_rate(uint8_t v)
{
	return v == 10 || v == 20 || v == 40 || v == 60 || v == 80 || v == 100 || v == 200;
}

static void argument(struct ps2mouse *m, uint8_t v)
{
	uint8_t cmd = m->pending;

	m->pending = 0;
	if (cmd == CMD_RATE && valid_rate(v)) {
		sample_rate(m, v);
		put(m, ACK);
	} else if (cmd == CMD_RESOLUTION && v <= 3) {
		m->resolution = v;
		put(m, ACK);
	} else {
		m->count.bad_commands++;
		put(m, RESEND);
	}
}

static void read_data(struct ps2mouse *m)
{
	uint8_t p[4];

	put(m, ACK);
	encode(m, m->acc_x, m->acc_y, m->acc_z, p);
	put_packet(m, p);
	m->acc_x = m->acc_y = m->acc_z = 0;
}

static void command(struct ps2mouse *m, uint8_t cmd)
{
	m->count.commands++;
	if (cmd != CMD_RATE)
		memset(m->rates, 0, sizeof(m->rates));
	switch (cmd) {
	case CMD_RESET:
		m->count.resets++;
		set_defaults(m);
		m->id = 0;
		m->remote = m->wrap = 0;
		m->last_len = 0;
		put(m, ACK);
		put(m, SELF_TEST);
		put(m, m->id);
		break;
	case CMD_DEFAULTS:
		set_defaults(m);
		put(m, ACK);
		break;
	case CMD_ENABLE:
	case CMD_DISABLE:
		m->reporting = cmd == CMD_ENABLE;
		m->acc_x = m->acc_y = m->acc_z = 0;
		put(m, ACK);
		break;
	case CMD_RATE:
	case CMD_RESOLUTION:
		m->pending = cmd;
		put(m, ACK);
		break;
	case CMD_SCALE11:
	case CMD_SCALE21:
		m->scaling21 = cmd == CMD_SCALE21;
		put(m, ACK);
		break;
	case CMD_STATUS:
		status(m);
		break;
	case CMD_GET_ID:
		put(m, ACK);
		put(m, m->id);
		break;
	case CMD_STREAM:
	case CMD_REMOTE:
		m->remote = cmd == CMD_REMOTE;
		m->acc_x = m->acc_y = m->acc_z = 0;
		put(m, ACK);
		break;
	case CMD_READ_DATA:
		read_data(m);
		break;
	case CMD_WRAP:
	case CMD_RESET_WRAP:
		m->wrap = cmd == CMD_WRAP;
		put(m, ACK);
		break;
	case CMD_RESEND:		/* the host missed our last packet: send it again */
		if (m->last_len)
			for (size_t i = 0; i < m->last_len; i++)
				put(m, m->last[i]);
		else
			put(m, ACK);
		break;
	default:
		m->count.bad_commands++;
		put(m, RESEND);
		break;
	}
}

void ps2mouse_write(struct ps2mouse *m, uint8_t byte)
{
	flush(m);
	if (m->pending && byte != CMD_RESET) {	/* a reset is never taken for an argument */
		argument(m, byte);
	} else if (m->wrap && byte != CMD_RESET_WRAP && byte != CMD_RESET) {
		put(m, byte);		/* wrap mode: everything else comes straight back */
	} else {
		m->pending = 0;
		command(m, byte);
	}
}

int ps2mouse_reporting(const struct ps2mouse *m)
{
	return m->reporting && !m->remote && !m->wrap;
}

/* How many packets it takes to move by v with at most step per packet. */
static int32_t steps(int32_t v, int32_t step)
{
	return (magnitude(v) + step - 1) / step;
}

unsigned ps2mouse_motion(struct ps2mouse *m, int32_t dx, int32_t dy, int32_t wheel,
			 uint32_t buttons)
{
	/* 2:1 scaling doubles what a packet carries: half a step keeps it within 9 bits */
	int32_t step = m->scaling21 ? 127 : 255, n;
	int32_t x = clamp(dx, -PS2MOUSE_MAX_DELTA, PS2MOUSE_MAX_DELTA);
	int32_t y = -clamp(dy, -PS2MOUSE_MAX_DELTA, PS2MOUSE_MAX_DELTA);	/* PS/2: up is positive */
	int32_t z = m->id == 3 ? clamp(wheel, -PS2MOUSE_MAX_WHEEL, PS2MOUSE_MAX_WHEEL) : 0;
	uint8_t p[4];

	m->count.motions++;
	m->buttons = buttons & PS2MOUSE_BUTTONS;
	if (!ps2mouse_reporting(m)) {
		if (m->remote) {
			m->acc_x = clamp(m->acc_x + x, -ACC_LIMIT, ACC_LIMIT);
			m->acc_y = clamp(m->acc_y + y, -ACC_LIMIT, ACC_LIMIT);
			m->acc_z = clamp(m->acc_z + z, -ACC_LIMIT, ACC_LIMIT);
		}
		m->count.motions_ignored++;
		return 0;
	}
	n = MAX(MAX(steps(x, step), steps(y, step)), MAX(steps(z, 7), 1));
	if ((size_t)n * packet_len(m) > PS2MOUSE_QUEUE - m->q_count) {
		m->count.packets_dropped += (uint64_t)n;
		return 0;
	}
	for (int32_t i = 0; i < n; i++) {
		int32_t sx = clamp(x, -step, step), sy = clamp(y, -step, step), sz = clamp(z, -7, 7);

		encode(m, sx, sy, sz, p);
		put_packet(m, p);
		x -= sx;
		y -= sy;
		z -= sz;
	}
	m->count.packets += (uint64_t)n;
	return (unsigned)n;
}

size_t ps2mouse_pending(const struct ps2mouse *m)
{
	return m->q_count;
}

uint8_t ps2mouse_peek(const struct ps2mouse *m)
{
	return m->q_count ? m->queue[m->q_head] : 0;
}

uint8_t ps2mouse_pop(struct ps2mouse *m)
{
	uint8_t v = ps2mouse_peek(m);

	if (m->q_count) {
		m->q_head = (m->q_head + 1) % PS2MOUSE_QUEUE;
		m->q_count--;
	}
	return v;
}

struct ps2mouse *ps2mouse_init(char *err, size_t errlen)
{
	struct ps2mouse *m = calloc(1, sizeof(*m));

	if (!m) {
		snprintf(err, errlen, "ps2mouse: out of memory");
		return NULL;
	}
	set_defaults(m);
	return m;
}

void ps2mouse_teardown(struct ps2mouse *m)
{
	free(m);
}

void ps2mouse_stats_json(struct ps2mouse *m, struct sbuf *sb)
{
	sb_printf(sb, "{\"motions\":%llu,\"motionsIgnored\":%llu,\"packets\":%llu,"
		  "\"packetsDropped\":%llu,\"commands\":%llu,\"badCommands\":%llu,\"resets\":%llu,"
		  "\"id\":%u,\"reporting\":%s}",
		  (unsigned long long)LOAD_RELAXED(m->count.motions),
		  (unsigned long long)LOAD_RELAXED(m->count.motions_ignored),
		  (unsigned long long)LOAD_RELAXED(m->count.packets),
		  (unsigned long long)LOAD_RELAXED(m->count.packets_dropped),
		  (unsigned long long)LOAD_RELAXED(m->count.commands),
		  (unsigned long long)LOAD_RELAXED(m->count.bad_commands),
		  (unsigned long long)LOAD_RELAXED(m->count.resets),
		  (unsigned)LOAD_RELAXED(m->id),
		  LOAD_RELAXED(m->reporting) && !LOAD_RELAXED(m->remote) ? "true" : "false");
}

/* Saved state, version 1: u32 version; u32 queue count, the queued bytes (oldest first); u8
 * pending, id, rate, resolution, scaling21, reporting, remote, wrap, rates[3]; u32 buttons;
 * i32 acc x, y, z; u8 last length, last[4]. Counters are the helper's, not the guest's: not saved. */
#define PS2MOUSE_STATE_VERSION 1

void ps2mouse_save(const struct ps2mouse *m, struct state_out *o)
{
	so_u32(o, PS2MOUSE_STATE_VERSION);
	so_u32(o, (uint32_t)m->q_count);
	for (size_t i = 0; i < m->q_count; i++)
		so_u8(o, m->queue[(m->q_head + i) % PS2MOUSE_QUEUE]);
	so_u8(o, m->pending);
	so_u8(o, m->id);
	so_u8(o, m->rate);
	so_u8(o, m->resolution);
	so_u8(o, (uint8_t)m->scaling21);
	so_u8(o, (uint8_t)m->reporting);
	so_u8(o, (uint8_t)m->remote);
	so_u8(o, (uint8_t)m->wrap);
	so_bytes(o, m->rates, 3);
	so_u32(o, m->buttons);
	so_u32(o, (uint32_t)m->acc_x);
	so_u32(o, (uint32_t)m->acc_y);
	so_u32(o, (uint32_t)m->acc_z);
	so_u8(o, (uint8_t)m->last_len);
	so_bytes(o, m->last, 4);
}

int ps2mouse_load(struct ps2mouse *m, struct state_in *in, char *err, size_t errlen)
{
	uint32_t version = si_u32(in), count = si_u32(in), acc[3];
	const uint8_t *q = si_bytes(in, count <= PS2MOUSE_QUEUE ? count : 0), *rates, *last;
	uint8_t b[8], last_len;

	for (int i = 0; i < 8; i++)
		b[i] = si_u8(in);
	rates = si_bytes(in, 3);
	m->buttons = si_u32(in);
	for (int i = 0; i < 3; i++)
		acc[i] = si_u32(in);
	last_len = si_u8(in);
	last = si_bytes(in, 4);
	if (version != PS2MOUSE_STATE_VERSION) {
		snprintf(err, errlen, "ps2mouse: state version %u, this helper reads %d", version,
			 PS2MOUSE_STATE_VERSION);
		return -1;
	}
	if (in->bad || count > PS2MOUSE_QUEUE || (b[1] != 0 && b[1] != 3) || b[4] > 1 || b[5] > 1 ||
	    b[6] > 1 || b[7] > 1 || last_len > 4 || m->buttons > PS2MOUSE_BUTTONS) {
		snprintf(err, errlen, "ps2mouse: malformed state");
		return -1;
	}
	for (int i = 0; i < 3; i++)
		if ((int32_t)acc[i] > ACC_LIMIT || (int32_t)acc[i] < -ACC_LIMIT) {
			snprintf(err, errlen, "ps2mouse: malformed state (movement beyond %d)", ACC_LIMIT);
			return -1;
		}
	m->q_head = 0;
	m->q_count = count;
	if (count)
		memcpy(m->queue, q, count);
	m->pending = b[0];
	m->id = b[1];
	m->rate = b[2];
	m->resolution = b[3];
	m->scaling21 = b[4];
	m->reporting = b[5];
	m->remote = b[6];
	m->wrap = b[7];
	memcpy(m->rates, rates, 3);
	m->acc_x = (int32_t)acc[0];
	m->acc_y = (int32_t)acc[1];
	m->acc_z = (int32_t)acc[2];
	m->last_len = last_len;
	memcpy(m->last, last, 4);
	return 0;
}
