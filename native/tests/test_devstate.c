/* Each device's saved state (serial, i8042 with its PS/2 mouse, debug port): a device driven into a
 * non-trivial state is saved, loaded into a fresh one, and the copy behaves the same (same bytes out
 * of its ports, same interrupt level, same state saved again); checking a state (commit 0) changes
 * nothing; every truncation, a wrong version and trailing bytes are refused with nothing changed. The
 * framebuffer's needs a KVM memory slot: test/snapshot.test.ts compares its pixels on real KVM. */
#include <stdlib.h>

#include "check.h"
#include "fuzz.h"
#include "debugport.h"
#include "i8042.h"
#include "machine.h"
#include "serial.h"

#define COM1 0x3f8
#define KBD_DATA 0x60
#define KBD_CMD  0x64

struct rig {
	struct iobus bus;
	struct irq_recorder irq, aux;
	struct stop_recorder stop;
	struct events *events;
	struct serial *s;
	struct i8042 *k;
	struct debugport *d;
};

static void rig_up(struct rig *r)
{
	char err[256] = "";

	memset(r, 0, sizeof(*r));
	r->events = events_create();
	r->s = serial_init(&r->bus, recorded_irq(&r->irq, SERIAL_IRQ), r->events, err, sizeof(err));
	CHECK_STR(err, "");
	r->k = i8042_init(&r->bus, recorded_irq(&r->irq, I8042_KBD_IRQ), recorded_irq(&r->aux, I8042_AUX_IRQ),
			  r->events, recorded_stop(&r->stop), err, sizeof(err));
	CHECK_STR(err, "");
	r->d = debugport_init(&r->bus, recorded_irq(&r->aux, QG_DOORBELL_IRQ), r->events, recorded_stop(&r->stop),
			      err, sizeof(err));
	CHECK_STR(err, "");
	CHECK(r->events && r->s && r->k && r->d);
}

static void rig_down(struct rig *r)
{
	debugport_teardown(r->d);
	i8042_teardown(r->k);
	serial_teardown(r->s);
	events_destroy(r->events);
}

typedef void (*save_fn)(void *dev, struct state_out *o);
typedef int (*load_fn)(void *dev, const uint8_t *p, size_t len, int commit, char *err, size_t errlen);

static void save_serial(void *d, struct state_out *o) { serial_save(d, o); }
static int load_serial(void *d, const uint8_t *p, size_t n, int c, char *e, size_t el) { return serial_load(d, p, n, c, e, el); }
static void save_i8042(void *d, struct state_out *o) { i8042_save(d, o); }
static int load_i8042(void *d, const uint8_t *p, size_t n, int c, char *e, size_t el) { return i8042_load(d, p, n, c, e, el); }
static void save_debug(void *d, struct state_out *o) { debugport_save(d, o); }
static int load_debug(void *d, const uint8_t *p, size_t n, int c, char *e, size_t el) { return debugport_load(d, p, n, c, e, el); }

static int same_state(save_fn save, void *a, void *b)
{
	struct state_out x, y;
	int same;

	so_init(&x);
	so_init(&y);
	save(a, &x);
	save(b, &y);
	same = !x.oom && !y.oom && x.len == y.len && !memcmp(x.data, y.data, x.len);
	so_free(&x);
	so_free(&y);
	return same;
}

/* Refusals leave `fresh` as it was: every strict prefix, a wrong version, one byte too many. */
static void check_refusals(save_fn save, load_fn load, void *src, void *fresh, void *pristine, const char *prefix)
{
	struct state_out o;
	char err[256];
	uint8_t *bad;

	so_init(&o);
	save(src, &o);
	CHECK(!o.oom && o.len > 4);
	for (size_t n = 0; n < o.len; n++) {
		uint8_t *cut = exact_copy(o.data, n);
		err[0] = 0;
		CHECK_EQ(load(fresh, cut, n, 1, err, sizeof(err)), -1);
		CHECK(!strncmp(err, prefix, strlen(prefix)));
		free(cut);
	}
	bad = malloc(o.len + 1);
	memcpy(bad, o.data, o.len);
	bad[o.len] = 0;
	CHECK_EQ(load(fresh, bad, o.len + 1, 1, err, sizeof(err)), -1);
	bad[0] ^= 0x7;			/* the version (first u32) */
	CHECK_EQ(load(fresh, bad, o.len, 1, err, sizeof(err)), -1);
	CHECK(strstr(err, "version") != NULL);
	free(bad);
	CHECK(same_state(save, fresh, pristine));
	so_free(&o);
}

static void round_trip(save_fn save, load_fn load, void *src, void *dst, void *pristine)
{
	struct state_out o;
	char err[256] = "";

	so_init(&o);
	save(src, &o);
	CHECK(!o.oom);
	CHECK_EQ(load(dst, o.data, o.len, 0, err, sizeof(err)), 0);	/* checked only */
	CHECK(same_state(save, dst, pristine));
	CHECK_EQ(load(dst, o.data, o.len, 1, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK(same_state(save, dst, src));
	so_free(&o);
}

static void test_serial(void)
{
	struct rig a, b, c;
	uint8_t buf[64];
	uint64_t pos = 0, lost;
	size_t n;

	rig_up(&a);
	rig_up(&b);
	rig_up(&c);
	outb(&a.bus, COM1 + 3, 0x80);		/* DLAB: divisor 0x0102 */
	outb(&a.bus, COM1 + 0, 0x02);
	outb(&a.bus, COM1 + 1, 0x01);
	outb(&a.bus, COM1 + 3, 0x03);
	outb(&a.bus, COM1 + 7, 0x5a);		/* scratch */
	outb(&a.bus, COM1 + 4, 0x0b);		/* DTR, RTS, OUT2 */
	outb(&a.bus, COM1 + 1, 0x01);		/* receive interrupts */
	for (const char *p = "scrollback\n"; *p; p++)
		outb(&a.bus, COM1, (uint8_t)*p);
	CHECK_EQ(serial_input(a.s, (const uint8_t *)"xyz", 3), 3);
	CHECK_EQ(a.irq.level, 1);
	CHECK_EQ(inb(&a.bus, COM1), 'x');	/* one read: "yz" wait */

	check_refusals(save_serial, load_serial, a.s, b.s, c.s, "serial: ");
	round_trip(save_serial, load_serial, a.s, b.s, c.s);
	CHECK_EQ(b.irq.level, 1);			/* the line was set to the saved level */
	CHECK_EQ(ring_head(&b.s->out), ring_head(&a.s->out));
	n = ring_read(&b.s->out, &pos, buf, sizeof(buf), &lost);
	CHECK_EQ(n, 11);
	CHECK(!memcmp(buf, "scrollback\n", 11));
	CHECK_EQ(inb(&b.bus, COM1 + 7), 0x5a);
	CHECK_EQ(inb(&b.bus, COM1 + 4), 0x0b);
	outb(&b.bus, COM1 + 3, 0x83);
	CHECK_EQ(inb(&b.bus, COM1 + 0), 0x02);
	CHECK_EQ(inb(&b.bus, COM1 + 1), 0x01);
	outb(&b.bus, COM1 + 3, 0x03);
	CHECK_EQ(inb(&b.bus, COM1), 'y');
	CHECK_EQ(inb(&b.bus, COM1), 'z');
	CHECK_EQ(inb(&b.bus, COM1 + 5) & 0x01, 0);	/* nothing more received */
	CHECK_EQ(b.irq.level, 0);
	/* Output after the load goes on from the saved head. */
	outb(&b.bus, COM1, '!');
	CHECK_EQ(ring_head(&b.s->out), ring_head(&a.s->out) + 1);
	rig_down(&a);
	rig_down(&b);
	rig_down(&c);
}

/* A long console: the ring wrapped, only its last SERIAL_RING_SIZE bytes are kept and saved. */
static void test_serial_wrapped_ring(void)
{
	struct rig a, b, c;
	uint8_t *big = malloc(SERIAL_RING_SIZE + 1000), last[16];
	uint64_t pos;
	struct state_out o;
	char err[256];

	rig_up(&a);
	rig_up(&b);
	rig_up(&c);
	for (size_t i = 0; i < SERIAL_RING_SIZE + 1000; i++)
		big[i] = (uint8_t)('a' + i % 26);
	ring_write(&a.s->out, big, SERIAL_RING_SIZE + 1000);
	round_trip(save_serial, load_serial, a.s, b.s, c.s);
	CHECK_EQ(ring_head(&b.s->out), SERIAL_RING_SIZE + 1000);
	pos = SERIAL_RING_SIZE + 1000 - sizeof(last);
	uint64_t lost;
	CHECK_EQ(ring_read(&b.s->out, &pos, last, sizeof(last), &lost), sizeof(last));
	CHECK(!memcmp(last, big + SERIAL_RING_SIZE + 1000 - sizeof(last), sizeof(last)));
	/* A state claiming fewer kept bytes than a wrapped ring holds is malformed. */
	so_init(&o);
	serial_save(a.s, &o);
	CHECK_EQ(serial_load(c.s, o.data, o.len - 1, 0, err, sizeof(err)), -1);
	so_free(&o);
	free(big);
	rig_down(&a);
	rig_down(&b);
	rig_down(&c);
}

static void test_i8042_and_mouse(void)
{
	struct rig a, b, c;
	const uint8_t codes[] = { 0x1e, 0x9e, 0x30 };

	rig_up(&a);
	rig_up(&b);
	rig_up(&c);
	/* Enable the aux port and its interrupt, then the mouse's reporting, with the wheel unlocked. */
	outb(&a.bus, KBD_CMD, 0xa8);
	outb(&a.bus, KBD_CMD, 0x60);
	outb(&a.bus, KBD_DATA, 0x47);
	const uint8_t seq[] = { 0xf3, 200, 0xf3, 100, 0xf3, 80, 0xf4 };
	for (size_t i = 0; i < sizeof(seq); i++) {
		outb(&a.bus, KBD_CMD, 0xd4);
		outb(&a.bus, KBD_DATA, seq[i]);
		CHECK_EQ(inb(&a.bus, KBD_DATA), 0xfa);	/* ACK */
	}
	int reporting = 0;
	CHECK_EQ(i8042_mouse_motion(a.k, 5, -3, 1, 1, &reporting), 1);
	CHECK(reporting);
	CHECK_EQ(i8042_input(a.k, codes, sizeof(codes)), 3);

	check_refusals(save_i8042, load_i8042, a.k, b.k, c.k, "");
	round_trip(save_i8042, load_i8042, a.k, b.k, c.k);
	CHECK_EQ(b.k->mouse->id, 3);
	CHECK_EQ(b.irq.level, a.irq.level);
	CHECK_EQ(b.aux.level, a.aux.level);
	/* The two drain the same bytes in the same order. */
	for (int i = 0; i < 10; i++) {
		uint8_t sa = inb(&a.bus, KBD_CMD), sb = inb(&b.bus, KBD_CMD);
		CHECK_EQ(sb, sa);
		if (!(sa & 1))
			break;
		CHECK_EQ(inb(&b.bus, KBD_DATA), inb(&a.bus, KBD_DATA));
	}
	CHECK(same_state(save_i8042, a.k, b.k));
	rig_down(&a);
	rig_down(&b);
	rig_down(&c);
}

static void test_debugport(void)
{
	struct rig a, b, c;

	rig_up(&a);
	rig_up(&b);
	rig_up(&c);
	CHECK_EQ(debugport_command(a.d, 0x0109), 0);
	CHECK_EQ(debugport_command(a.d, 0x0209), 0);
	debugport_request_poweroff(a.d);
	CHECK_EQ(a.aux.level, 1);
	check_refusals(save_debug, load_debug, a.d, b.d, c.d, "debug port: ");
	round_trip(save_debug, load_debug, a.d, b.d, c.d);
	CHECK_EQ(b.aux.level, 1);
	CHECK_EQ(port_in(&b.bus, QG_PORT_POWER, 1), 1);
	CHECK_EQ(port_in(&b.bus, QG_PORT_COMMAND, 4), 0x0109);
	CHECK_EQ(port_in(&b.bus, QG_PORT_COMMAND, 4), 0x0209);
	CHECK_EQ(port_in(&b.bus, QG_PORT_COMMAND, 4), QG_CMD_HOST_POWEROFF);
	CHECK_EQ(port_in(&b.bus, QG_PORT_COMMAND, 4), 0);
	CHECK_EQ(b.aux.level, 0);
	rig_down(&a);
	rig_down(&b);
	rig_down(&c);
}

/* crc32_zeros (RAM_CHECKSUM's holes) equals feeding that many zero bytes, from any start value. */
static void test_crc32_zeros(void)
{
	static uint8_t zeros[300000];
	const uint64_t lengths[] = { 0, 1, 2, 7, 8, 255, 4096, 65536, 65537, 299999 };
	const uint32_t starts[] = { 0, 0xffffffffu, 0x12345678u };

	for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++)
		for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++)
			CHECK(crc32_zeros(starts[s], lengths[i]) == crc32_update(starts[s], zeros, lengths[i]));
}

int main(void)
{
	RUN(test_crc32_zeros);
	RUN(test_serial);
	RUN(test_serial_wrapped_ring);
	RUN(test_i8042_and_mouse);
	RUN(test_debugport);
	return check_done("devstate");
}
