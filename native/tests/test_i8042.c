/* The i8042 through its ports on a bus, with a recorded IRQ line and stop hook: status and data
 * ports, the controller commands, the scancode queue, reset via 0xFE, and access widths. */
#include <stdlib.h>

#include "check.h"
#include "i8042.h"
#include "machine.h"
#include "proto.h"

#define DATA 0x60
#define STATUS 0x64
#define CMD 0x64

#define STS_OBF 0x01
#define STS_SYS 0x04
#define STS_CMD 0x08

struct rig {
	struct iobus bus;
	struct irq_recorder irq;
	struct stop_recorder stop;
	struct events *events;
	struct i8042 *k;
};

static void rig_up(struct rig *r)
{
	char err[256] = "";

	memset(r, 0, sizeof(*r));
	r->events = events_create();
	r->k = i8042_init(&r->bus, recorded_irq(&r->irq, I8042_KBD_IRQ), r->events,
			  recorded_stop(&r->stop), err, sizeof(err));
	CHECK(r->events && r->k);
	CHECK_STR(err, "");
}

static void rig_down(struct rig *r)
{
	i8042_teardown(r->k);
	events_destroy(r->events);
}

static void test_status_at_reset(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(r.bus.count, 2);		/* 0x60 and 0x64 only */
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS);
	CHECK_EQ(inb(&r.bus, DATA), 0x00);	/* empty output buffer */
	CHECK_EQ(inb(&r.bus, 0x61), 0xff);	/* not the controller's */
	CHECK_EQ(r.irq.calls, 0);
	rig_down(&r);
}

static void test_scancode_queue(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(i8042_input(r.k, (const uint8_t *)"\x1e\x9e\x30", 3), 3);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF);
	CHECK_EQ(r.irq.irq, I8042_KBD_IRQ);
	CHECK_EQ(r.irq.level, 1);
	CHECK_EQ(inb(&r.bus, DATA), 0x1e);
	CHECK_EQ(r.irq.level, 1);		/* more to read */
	CHECK_EQ(inb(&r.bus, DATA), 0x9e);
	CHECK_EQ(inb(&r.bus, DATA), 0x30);
	CHECK_EQ(r.irq.level, 0);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS);
	CHECK_EQ(r.k->count.irqs, 1);
	rig_down(&r);
}

static void test_queue_limit(void)
{
	static uint8_t codes[I8042_QUEUE + 44];
	struct rig r;
	unsigned in_order = 1;

	rig_up(&r);
	for (size_t i = 0; i < sizeof(codes); i++)
		codes[i] = (uint8_t)(i + 1);
	CHECK_EQ(i8042_input(r.k, codes, sizeof(codes)), I8042_QUEUE);
	CHECK_EQ(r.k->count.scancodes_in, I8042_QUEUE);
	CHECK_EQ(r.k->count.scancodes_dropped, 44);
	for (size_t i = 0; i < I8042_QUEUE; i++)
		in_order &= inb(&r.bus, DATA) == codes[i];
	CHECK(in_order);
	CHECK_EQ(inb(&r.bus, STATUS) & STS_OBF, 0);
	CHECK_EQ(i8042_input(r.k, codes, 2), 2);	/* room again, and the ring wraps */
	CHECK_EQ(inb(&r.bus, DATA), 1);
	CHECK_EQ(inb(&r.bus, DATA), 2);
	rig_down(&r);
}

static void test_configuration_byte(void)
{
	struct rig r;

	rig_up(&r);
	outb(&r.bus, CMD, 0x20);		/* read it */
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF);
	CHECK_EQ(r.irq.level, 0);		/* controller replies raise no IRQ */
	CHECK_EQ(inb(&r.bus, DATA), 0x05);	/* keyboard interrupt on, system flag */
	outb(&r.bus, CMD, 0x60);		/* write it: the next data byte is the value */
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_CMD);
	outb(&r.bus, DATA, 0x04);		/* keyboard interrupt off */
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS);
	outb(&r.bus, CMD, 0x20);
	CHECK_EQ(inb(&r.bus, DATA), 0x04);
	i8042_input(r.k, (const uint8_t *)"\x1c", 1);
	CHECK_EQ(inb(&r.bus, STATUS) & STS_OBF, STS_OBF);
	CHECK_EQ(r.irq.level, 0);		/* masked by the configuration byte */
	CHECK_EQ(inb(&r.bus, DATA), 0x1c);
	CHECK_EQ(r.k->count.commands, 3);
	rig_down(&r);
}

static void test_commands(void)
{
	struct rig r;

	rig_up(&r);
	outb(&r.bus, CMD, 0xaa);		/* controller self-test */
	CHECK_EQ(inb(&r.bus, DATA), 0x55);
	outb(&r.bus, CMD, 0xab);		/* keyboard interface test */
	CHECK_EQ(inb(&r.bus, DATA), 0x00);
	outb(&r.bus, DATA, 0xf4);		/* a byte for the keyboard: acknowledged */
	CHECK_EQ(inb(&r.bus, DATA), 0xfa);
	i8042_input(r.k, (const uint8_t *)"\x10", 1);
	outb(&r.bus, CMD, 0xad);		/* disable the keyboard: scancodes wait */
	CHECK_EQ(inb(&r.bus, STATUS) & STS_OBF, 0);
	CHECK_EQ(r.irq.level, 0);
	outb(&r.bus, CMD, 0xae);		/* enable it again */
	CHECK_EQ(inb(&r.bus, STATUS) & STS_OBF, STS_OBF);
	CHECK_EQ(r.irq.level, 1);
	CHECK_EQ(inb(&r.bus, DATA), 0x10);
	outb(&r.bus, CMD, 0xd1);		/* others (A20 ...) are accepted, change nothing */
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS);
	CHECK_EQ(r.stop.calls, 0);
	rig_down(&r);
}

static void test_reset_line(void)
{
	struct rig r;
	unsigned matching;
	char json[128];

	rig_up(&r);
	events_take(r.events);
	outb(&r.bus, CMD, 0xfe);
	CHECK_EQ(r.stop.calls, 1);
	CHECK_STR(r.stop.reason, "guest reset (i8042)");
	CHECK_EQ(take_events(r.events, PROTO_EV_RESET, &matching, json, sizeof(json)), 1);
	CHECK_EQ(matching, 1);
	CHECK_STR(json, "{\"source\":\"i8042\"}");
	CHECK_EQ(r.k->count.resets, 1);
	outb(&r.bus, DATA, 0xfe);		/* 0xFE to the data port is a keyboard byte */
	CHECK_EQ(r.stop.calls, 1);
	rig_down(&r);
}

/* Wider accesses: the controller takes the first byte; the bytes beyond it belong to the
 * following ports, which read 0xff and drop writes (see i8042.c). */
static void test_access_width(void)
{
	struct rig r;

	rig_up(&r);
	i8042_input(r.k, (const uint8_t *)"\x2a\x2b", 2);
	CHECK_EQ(port_in(&r.bus, STATUS, 2), 0xff00 | STS_SYS | STS_OBF);
	CHECK_EQ(port_in(&r.bus, STATUS, 4), 0xffffff00 | STS_SYS | STS_OBF);
	CHECK_EQ(port_in(&r.bus, DATA, 2), 0xff2a);	/* one scancode taken, not two */
	CHECK_EQ(port_in(&r.bus, DATA, 4), 0xffffff2b);
	CHECK_EQ(port_in(&r.bus, DATA, 2), 0xff00);	/* empty */
	port_out(&r.bus, CMD, 2, 0xfe12);		/* command 0x12; 0xfe goes to 0x65 */
	CHECK_EQ(r.stop.calls, 0);
	port_out(&r.bus, CMD, 4, 0xaaaaaa60);		/* write the configuration byte: */
	port_out(&r.bus, DATA, 2, 0x0144);		/* its value is the low byte */
	outb(&r.bus, CMD, 0x20);
	CHECK_EQ(inb(&r.bus, DATA), 0x44);
	port_out(&r.bus, CMD, 2, 0x12fe);		/* the reset command in the low byte */
	CHECK_EQ(r.stop.calls, 1);
	rig_down(&r);
}

static void test_init_errors_and_teardown(void)
{
	struct iobus bus = { 0 };
	struct irq_recorder irq = { 0 };
	struct stop_recorder stop = { 0 };
	struct events *ev = events_create();
	char err[256] = "", why[128];
	struct i8042 *k;

	CHECK_EQ(iobus_register(&bus, 0x62, 4, NULL, &bus, "other", why, sizeof(why)), 0);
	k = i8042_init(&bus, recorded_irq(&irq, 1), ev, recorded_stop(&stop), err, sizeof(err));
	CHECK(k == NULL);
	CHECK_STR(err, "i8042: ports: range 0x64-0x64 overlaps other at 0x62-0x65");
	CHECK_EQ(bus.count, 1);			/* the data port it took is given back */
	iobus_unregister(&bus, &bus);
	k = i8042_init(&bus, recorded_irq(&irq, 1), ev, recorded_stop(&stop), err, sizeof(err));
	CHECK(k != NULL);
	CHECK_EQ(bus.count, 2);
	i8042_teardown(k);
	CHECK_EQ(bus.count, 0);
	i8042_teardown(NULL);
	events_destroy(ev);
}

static void test_stats_json(void)
{
	struct rig r;
	struct sbuf sb;

	rig_up(&r);
	i8042_input(r.k, (const uint8_t *)"\x01\x02", 2);
	outb(&r.bus, CMD, 0xaa);
	outb(&r.bus, CMD, 0xfe);
	sb_init(&sb);
	i8042_stats_json(r.k, &sb);
	CHECK_STR(sb.data, "{\"scancodesIn\":2,\"scancodesDropped\":0,\"irqs\":1,\"commands\":2,"
		  "\"resets\":1}");
	sb_free(&sb);
	rig_down(&r);
}

int main(void)
{
	RUN(test_status_at_reset);
	RUN(test_scancode_queue);
	RUN(test_queue_limit);
	RUN(test_configuration_byte);
	RUN(test_commands);
	RUN(test_reset_line);
	RUN(test_access_width);
	RUN(test_init_errors_and_teardown);
	RUN(test_stats_json);
	return check_done("i8042");
}
