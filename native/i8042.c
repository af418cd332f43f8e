/* i8042 keyboard controller: enough of the command set for a guest to read scancodes with
 * IRQ 1, to drive a PS/2 mouse on the auxiliary port with IRQ 12, and to reset itself by pulsing
 * the reset line (0xFE to port 0x64). The keyboard's and the mouse's bytes wait in their own
 * queues and share the one output buffer: it shows the head of one queue until the guest reads
 * it, so a byte that arrives between a status read and a data read never jumps in. */
#include "i8042.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"

#define STS_OBF   0x01	/* output buffer full */
#define STS_SYS   0x04
#define STS_CMD   0x08	/* last write was to the command port */
#define STS_AUX   0x20	/* the output buffer's byte is from the mouse */
#define CB_KBD_INT 0x01	/* configuration byte: keyboard interrupt enabled */
#define CB_AUX_INT 0x02	/* mouse interrupt enabled */
#define CB_KBD_DIS 0x10	/* keyboard clock disabled */
#define CB_AUX_DIS 0x20	/* mouse clock disabled */

#define CMD_READ_CB   0x20
#define CMD_WRITE_CB  0x60
#define CMD_DIS_AUX   0xa7
#define CMD_EN_AUX    0xa8
#define CMD_AUX_TEST  0xa9
#define CMD_DIS_KBD   0xad
#define CMD_EN_KBD    0xae
#define CMD_SELF_TEST 0xaa
#define CMD_KBD_TEST  0xab
#define CMD_WRITE_KBD_OUT 0xd2	/* next data byte appears as if from the keyboard */
#define CMD_WRITE_AUX_OUT 0xd3	/* ... as if from the mouse */
#define CMD_WRITE_AUX 0xd4	/* next data byte goes to the mouse */
#define CMD_RESET     0xfe

/* Picks the queue the output buffer shows, once the one it showed is read or disabled: the
 * keyboard first, then the mouse. */
static void settle(struct i8042 *k)
{
	int kbd = k->q_count && !(k->cmd_byte & CB_KBD_DIS);
	int aux = ps2mouse_pending(k->mouse) && !(k->cmd_byte & CB_AUX_DIS);

	if ((k->src == I8042_SRC_KBD && !kbd) || (k->src == I8042_SRC_AUX && !aux))
		k->src = I8042_SRC_NONE;
	if (k->src == I8042_SRC_NONE)
		k->src = kbd ? I8042_SRC_KBD : aux ? I8042_SRC_AUX : I8042_SRC_NONE;
}

/* Whose byte the guest reads next. */
static enum i8042_source shown(struct i8042 *k)
{
	return k->out_from_ctrl ? k->ctrl_src : k->src;
}

static void set_line(const struct irq_line *line, int *cur, int level, uint64_t *rises)
{
	if (level != *cur) {
		*cur = level;
		if (level)
			(*rises)++;
		irq_line_set(line, level);
	}
}

/* Each line is high while the output buffer holds a byte of its device and its interrupt is
 * enabled in the configuration byte; controller replies raise neither. */
static void update_irq(struct i8042 *k)
{
	enum i8042_source src;

	settle(k);
	src = shown(k);
	set_line(&k->irq, &k->irq_level, src == I8042_SRC_KBD && (k->cmd_byte & CB_KBD_INT),
		 &k->count.irqs);
	set_line(&k->aux_irq, &k->aux_irq_level, src == I8042_SRC_AUX && (k->cmd_byte & CB_AUX_INT),
		 &k->count.aux_irqs);
}

static void ctrl_byte(struct i8042 *k, uint8_t v, enum i8042_source src)
{
	k->out_from_ctrl = 1;
	k->ctrl_reply = v;
	k->ctrl_src = src;
}

static void ctrl_reply(struct i8042 *k, uint8_t v)
{
	ctrl_byte(k, v, I8042_SRC_CTRL);
}

static uint8_t status(struct i8042 *k)
{
	enum i8042_source src = shown(k);

	return (uint8_t)(STS_SYS | (src != I8042_SRC_NONE ? STS_OBF : 0) |
			 (src == I8042_SRC_AUX ? STS_AUX : 0) | (k->pending_cmd ? STS_CMD : 0));
}

static uint8_t read_data(struct i8042 *k)
{
	uint8_t v = 0;

	if (k->out_from_ctrl) {
		k->out_from_ctrl = 0;
		return k->ctrl_reply;
	}
	if (k->src == I8042_SRC_KBD) {
		v = k->queue[k->q_head];
		k->q_head = (k->q_head + 1) % I8042_QUEUE;
		k->q_count--;
	} else if (k->src == I8042_SRC_AUX) {
		v = ps2mouse_pop(k->mouse);
	}
	k->src = I8042_SRC_NONE;
	return v;
}

static void write_command(struct i8042 *k, uint8_t cmd)
{
	k->count.commands++;
	switch (cmd) {
	case CMD_READ_CB:
		ctrl_reply(k, k->cmd_byte);
		break;
	case CMD_WRITE_CB:
	case CMD_WRITE_KBD_OUT:
	case CMD_WRITE_AUX_OUT:
	case CMD_WRITE_AUX:
		k->pending_cmd = cmd;
		break;
	case CMD_DIS_AUX:
		k->cmd_byte |= CB_AUX_DIS;
		break;
	case CMD_EN_AUX:
		k->cmd_byte &= (uint8_t)~CB_AUX_DIS;
		break;
	case CMD_AUX_TEST:
		ctrl_reply(k, 0x00);
		break;
	case CMD_DIS_KBD:
		k->cmd_byte |= CB_KBD_DIS;
		break;
	case CMD_EN_KBD:
		k->cmd_byte &= (uint8_t)~CB_KBD_DIS;
		break;
	case CMD_SELF_TEST:
		ctrl_reply(k, 0x55);
		break;
	case CMD_KBD_TEST:
		ctrl_reply(k, 0x00);
		break;
	case CMD_RESET:
		k->count.resets++;
		log_info("guest reset through the i8042 (0xfe to port 0x64)");
		events_push(k->events, PROTO_EV_RESET, "{\"source\":\"i8042\"}");
		stop_hook_call(&k->reset, "guest reset (i8042)");
		break;
	default:		/* other commands (A20, LEDs...) are accepted and ignored */
		break;
	}
}

static void write_data(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending_cmd;

	k->pending_cmd = 0;
	switch (cmd) {
	case CMD_WRITE_CB:
		k->cmd_byte = v;
		break;
	case CMD_WRITE_KBD_OUT:
		ctrl_byte(k, v, I8042_SRC_KBD);
		break;
	case CMD_WRITE_AUX_OUT:
		ctrl_byte(k, v, I8042_SRC_AUX);
		break;
	case CMD_WRITE_AUX:
		k->count.aux_bytes++;
		ps2mouse_write(k->mouse, v);
		if (k->src == I8042_SRC_AUX)	/* the byte it showed was dropped with the stream */
			k->src = I8042_SRC_NONE;
		break;
	default:
		/* A byte for the keyboard itself: acknowledge (0xFA), as a keyboard does. */
		ctrl_reply(k, 0xfa);
		break;
	}
}

/* The controller's ports are one byte wide. A wider access (inw/inl, outw/outl at 0x60 or 0x64)
 * is what an ISA bus splits into byte cycles at consecutive ports: the controller sees only the
 * first byte; the others go to the ports after it, which nothing claims here, so they read as
 * an open bus (0xff, as a one-byte read of 0x61 or 0x65 does) and their writes are lost.
 * (Firecracker drops such accesses whole and kvmtool widens the data port; real hardware does
 * neither.) */
static void i8042_io(struct i8042 *k, int is_cmd_port, bool is_write, uint8_t *data,
		     unsigned len)
{
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		if (is_cmd_port)
			write_command(k, data[0]);
		else
			write_data(k, data[0]);
	} else if (is_cmd_port) {
		data[0] = status(k);
	} else {
		data[0] = read_data(k);
	}
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (!is_write && len > 1)
		memset(data + 1, 0xff, len - 1);
}

static void i8042_data_io(void *opaque, uint64_t offset, bool is_write, uint8_t *data,
			  unsigned len)
{
	(void)offset;
	i8042_io(opaque, 0, is_write, data, len);
}

static void i8042_cmd_io(void *opaque, uint64_t offset, bool is_write, uint8_t *data,
			 unsigned len)
{
	(void)offset;
	i8042_io(opaque, 1, is_write, data, len);
}

size_t i8042_input(struct i8042 *k, const uint8_t *codes, size_t len)
{
	size_t n;

	pthread_mutex_lock(&k->lock);
	n = MIN(len, I8042_QUEUE - k->q_count);
	for (size_t i = 0; i < n; i++)
		k->queue[(k->q_head + k->q_count++) % I8042_QUEUE] = codes[i];
	k->count.scancodes_in += n;
	k->count.scancodes_dropped += len - n;
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return n;
}

unsigned i8042_mouse_motion(struct i8042 *k, int32_t dx, int32_t dy, int32_t wheel,
			    uint32_t buttons, int *reporting)
{
	unsigned n;

	pthread_mutex_lock(&k->lock);
	n = ps2mouse_motion(k->mouse, dx, dy, wheel, buttons);
	*reporting = ps2mouse_reporting(k->mouse);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return n;
}

struct i8042 *i8042_init(struct iobus *pio, struct irq_line irq, struct irq_line aux_irq,
			 struct events *events, struct stop_hook reset, char *err, size_t errlen)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	char why[160];

	if (!k) {
		snprintf(err, errlen, "i8042: out of memory");
		return NULL;
	}
	k->irq = irq;
	k->aux_irq = aux_irq;
	k->events = events;
	k->reset = reset;
	k->cmd_byte = CB_KBD_INT | 0x04;
	pthread_mutex_init(&k->lock, NULL);
	k->bus = pio;
	k->mouse = ps2mouse_init(why, sizeof(why));
	if (!k->mouse) {
		snprintf(err, errlen, "i8042: %s", why);
		i8042_teardown(k);
		return NULL;
	}
	if (iobus_register(pio, I8042_DATA_PORT, 1, i8042_data_io, k, "i8042-data", why,
			   sizeof(why)) < 0 ||
	    iobus_register(pio, I8042_COMMAND_PORT, 1, i8042_cmd_io, k, "i8042-cmd", why,
			   sizeof(why)) < 0) {
		snprintf(err, errlen, "i8042: ports: %s", why);
		i8042_teardown(k);
		return NULL;
	}
	return k;
}

void i8042_teardown(struct i8042 *k)
{
	if (!k)
		return;
	iobus_unregister(k->bus, k);
	ps2mouse_teardown(k->mouse);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

void i8042_stats_json(struct i8042 *k, struct sbuf *sb)
{
	sb_printf(sb, "{\"scancodesIn\":%llu,\"scancodesDropped\":%llu,\"irqs\":%llu,"
		  "\"commands\":%llu,\"resets\":%llu,\"auxIrqs\":%llu,\"auxBytes\":%llu}",
		  (unsigned long long)LOAD_RELAXED(k->count.scancodes_in),
		  (unsigned long long)LOAD_RELAXED(k->count.scancodes_dropped),
		  (unsigned long long)LOAD_RELAXED(k->count.irqs),
		  (unsigned long long)LOAD_RELAXED(k->count.commands),
		  (unsigned long long)LOAD_RELAXED(k->count.resets),
		  (unsigned long long)LOAD_RELAXED(k->count.aux_irqs),
		  (unsigned long long)LOAD_RELAXED(k->count.aux_bytes));
}

/* Saved state, version 1: u32 version; u32 queue count, the scancodes waiting (oldest first); u8
 * cmd_byte, pending_cmd, out_from_ctrl, ctrl_reply, ctrl_src, src, irq_level, aux_irq_level;
 * then the mouse's state (ps2mouse_save). */
#define I8042_STATE_VERSION 1

void i8042_save(struct i8042 *k, struct state_out *o)
{
	pthread_mutex_lock(&k->lock);
	so_u32(o, I8042_STATE_VERSION);
	so_u32(o, (uint32_t)k->q_count);
	for (size_t i = 0; i < k->q_count; i++)
		so_u8(o, k->queue[(k->q_head + i) % I8042_QUEUE]);
	so_u8(o, k->cmd_byte);
	so_u8(o, k->pending_cmd);
	so_u8(o, (uint8_t)k->out_from_ctrl);
	so_u8(o, k->ctrl_reply);
	so_u8(o, (uint8_t)k->ctrl_src);
	so_u8(o, (uint8_t)k->src);
	so_u8(o, (uint8_t)k->irq_level);
	so_u8(o, (uint8_t)k->aux_irq_level);
	ps2mouse_save(k->mouse, o);
	pthread_mutex_unlock(&k->lock);
}

int i8042_load(struct i8042 *k, const uint8_t *p, size_t len, int commit, char *err, size_t errlen)
{
	struct state_in in;
	struct ps2mouse mouse;
	uint32_t version, count;
	const uint8_t *q;
	uint8_t b[8];

	si_init(&in, p, len);
	version = si_u32(&in);
	count = si_u32(&in);
	q = si_bytes(&in, count <= I8042_QUEUE ? count : 0);
	for (int i = 0; i < 8; i++)
		b[i] = si_u8(&in);
	if (version != I8042_STATE_VERSION) {
		snprintf(err, errlen, "i8042: state version %u, this helper reads %d", version,
			 I8042_STATE_VERSION);
		return -1;
	}
	if (in.bad || count > I8042_QUEUE || b[2] > 1 || b[4] > I8042_SRC_AUX ||
	    b[5] > I8042_SRC_AUX || b[6] > 1 || b[7] > 1) {
		snprintf(err, errlen, "i8042: malformed state (%zu bytes)", len);
		return -1;
	}
	pthread_mutex_lock(&k->lock);
	mouse = *k->mouse;		/* the counters stay; the rest comes from the state */
	pthread_mutex_unlock(&k->lock);
	if (ps2mouse_load(&mouse, &in, err, errlen) < 0)
		return -1;
	if (!si_done(&in)) {
		snprintf(err, errlen, "i8042: malformed state (%zu bytes, %zu extra)", len,
			 in.len - in.off);
		return -1;
	}
	if (!commit)
		return 0;
	pthread_mutex_lock(&k->lock);
	k->q_head = 0;
	k->q_count = count;
	if (count)
		memcpy(k->queue, q, count);
	k->cmd_byte = b[0];
	k->pending_cmd = b[1];
	k->out_from_ctrl = b[2];
	k->ctrl_reply = b[3];
	k->ctrl_src = (enum i8042_source)b[4];
	k->src = (enum i8042_source)b[5];
	*k->mouse = mouse;
	k->irq_level = b[6];
	k->aux_irq_level = b[7];
	irq_line_set(&k->irq, k->irq_level);
	irq_line_set(&k->aux_irq, k->aux_irq_level);
	pthread_mutex_unlock(&k->lock);
	return 0;
}
