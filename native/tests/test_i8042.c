/* The i8042 through its ports on a bus, with recorded IRQ lines and stop hook: status and data
 * ports, the controller commands, the scancode queue, reset via 0xFE, access widths, and the
 * auxiliary port: its commands, bytes to and from the mouse, IRQ 12 against IRQ 1. */
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
#define STS_AUX 0x20

struct rig {
	struct iobus bus;
	struct irq_recorder irq, aux;
	struct stop_recorder stop;
	struct events *events;
	struct i8042 *k;
};

static void rig_up(struct rig *r)
{
	char err[256] = "";

	memset(r, 0, sizeof(*r));
	r->events = events_create();
	r->k = i8042_init(&r->bus, recorded_irq(&r->irq, I8042_KBD_IRQ),
			  recorded_irq(&r->aux, I8042_AUX_IRQ), r->events, recorded_stop(&r->stop), err,
			  sizeof(err));
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

/* Commands to the controller's auxiliary side: its test, disabling and enabling its clock (bit 5
 * of the configuration byte), and 0xD2/0xD3, bytes that appear as if from either device. */
static void test_aux_controller_commands(void)
{
	struct rig r;

	rig_up(&r);
	outb(&r.bus, CMD, 0xa9);		/* aux interface test: passed */
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF);
	CHECK_EQ(inb(&r.bus, DATA), 0x00);
	outb(&r.bus, CMD, 0xa7);
	outb(&r.bus, CMD, 0x20);
	CHECK_EQ(inb(&r.bus, DATA), 0x25);	/* aux clock disabled */
	outb(&r.bus, CMD, 0xa8);
	outb(&r.bus, CMD, 0x20);
	CHECK_EQ(inb(&r.bus, DATA), 0x05);
	outb(&r.bus, CMD, 0xd3);		/* loop a byte back as the mouse's */
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_CMD);
	outb(&r.bus, DATA, 0x5a);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF | STS_AUX);
	CHECK_EQ(r.aux.calls, 0);		/* aux interrupt off in the configuration byte */
	CHECK_EQ(inb(&r.bus, DATA), 0x5a);
	outb(&r.bus, CMD, 0x60);
	outb(&r.bus, DATA, 0x07);		/* both interrupts on */
	outb(&r.bus, CMD, 0xd3);
	outb(&r.bus, DATA, 0xa5);
	CHECK_EQ(r.aux.irq, I8042_AUX_IRQ);
	CHECK_EQ(r.aux.level, 1);
	CHECK_EQ(r.irq.level, 0);
	CHECK_EQ(inb(&r.bus, DATA), 0xa5);
	CHECK_EQ(r.aux.level, 0);
	outb(&r.bus, CMD, 0xd2);		/* ... and as the keyboard's */
	outb(&r.bus, DATA, 0x1e);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF);
	CHECK_EQ(r.irq.level, 1);
	CHECK_EQ(r.aux.level, 0);
	CHECK_EQ(inb(&r.bus, DATA), 0x1e);
	CHECK_EQ(r.irq.level, 0);
	CHECK_EQ(r.k->count.aux_irqs, 1);
	CHECK_EQ(r.k->count.irqs, 1);
	rig_down(&r);
}

/* The guest's init of the mouse (0xD4 0xF4 with IRQ 12 on), then a packet read byte by byte. */
static void test_mouse_through_the_port(void)
{
	struct rig r;
	int reporting = -1;

	rig_up(&r);
	CHECK_EQ(i8042_mouse_motion(r.k, 1, 1, 0, 0, &reporting), 0);
	CHECK_EQ(reporting, 0);			/* nobody listens yet */
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS);
	outb(&r.bus, CMD, 0x60);
	outb(&r.bus, DATA, 0x07);
	outb(&r.bus, CMD, 0xd4);
	outb(&r.bus, DATA, 0xf4);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF | STS_AUX);
	CHECK_EQ(r.aux.level, 1);
	CHECK_EQ(r.irq.calls, 0);		/* IRQ 1 never moved */
	CHECK_EQ(inb(&r.bus, DATA), 0xfa);
	CHECK_EQ(r.aux.level, 0);
	CHECK_EQ(i8042_mouse_motion(r.k, 5, 3, 0, 1, &reporting), 1);
	CHECK_EQ(reporting, 1);
	CHECK_EQ(r.aux.level, 1);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF | STS_AUX);
	CHECK_EQ(inb(&r.bus, DATA), 0x29);	/* left, y sign: 3 down on screen is -3 */
	CHECK_EQ(inb(&r.bus, DATA), 0x05);
	CHECK_EQ(r.aux.level, 1);
	CHECK_EQ(inb(&r.bus, DATA), 0xfd);
	CHECK_EQ(r.aux.level, 0);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS);
	CHECK_EQ(r.aux.rises, 2);
	CHECK_EQ(r.irq.calls, 0);
	CHECK_EQ(r.k->count.aux_bytes, 1);
	rig_down(&r);
}

/* Keyboard and mouse bytes share the output buffer: each byte carries its source in the status
 * register and raises its own line; a byte the buffer shows stays until it is read. */
static void test_interleaved_keyboard_and_mouse(void)
{
	struct rig r;
	int reporting;

	rig_up(&r);
	outb(&r.bus, CMD, 0x60);
	outb(&r.bus, DATA, 0x07);
	outb(&r.bus, CMD, 0xd4);
	outb(&r.bus, DATA, 0xf4);
	CHECK_EQ(inb(&r.bus, DATA), 0xfa);
	i8042_mouse_motion(r.k, -2, 0, 0, 2, &reporting);	/* 1a fe 00 */
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF | STS_AUX);
	i8042_input(r.k, (const uint8_t *)"\x1e\x9e", 2);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF | STS_AUX);	/* still the mouse's */
	CHECK_EQ(r.irq.level, 0);
	CHECK_EQ(r.aux.level, 1);
	CHECK_EQ(inb(&r.bus, DATA), 0x1a);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF);	/* then the keyboard goes first */
	CHECK_EQ(r.irq.level, 1);
	CHECK_EQ(r.aux.level, 0);
	CHECK_EQ(inb(&r.bus, DATA), 0x1e);
	CHECK_EQ(inb(&r.bus, DATA), 0x9e);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF | STS_AUX);
	CHECK_EQ(r.irq.level, 0);
	CHECK_EQ(r.aux.level, 1);
	CHECK_EQ(inb(&r.bus, DATA), 0xfe);
	CHECK_EQ(inb(&r.bus, DATA), 0x00);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS);
	CHECK_EQ(r.irq.level, 0);
	CHECK_EQ(r.aux.level, 0);
	CHECK_EQ(r.k->count.irqs, 1);
	CHECK_EQ(r.k->count.aux_irqs, 3);	/* the ACK, the packet, its end after the keys */
	rig_down(&r);
}

/* The mouse's bytes wait while its clock is disabled (0xA7) and flow again after 0xA8; with its
 * interrupt off they are still readable, without IRQ 12. */
static void test_aux_disabled_and_masked(void)
{
	struct rig r;
	int reporting;

	rig_up(&r);
	outb(&r.bus, CMD, 0xd4);
	outb(&r.bus, DATA, 0xf4);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF | STS_AUX);
	CHECK_EQ(r.aux.calls, 0);		/* the default configuration byte masks IRQ 12 */
	CHECK_EQ(inb(&r.bus, DATA), 0xfa);
	outb(&r.bus, CMD, 0x60);
	outb(&r.bus, DATA, 0x07);
	outb(&r.bus, CMD, 0xa7);
	CHECK_EQ(i8042_mouse_motion(r.k, 0, 0, 0, 1, &reporting), 1);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS);
	CHECK_EQ(r.aux.level, 0);
	i8042_input(r.k, (const uint8_t *)"\x10", 1);	/* the keyboard is not held up */
	CHECK_EQ(inb(&r.bus, DATA), 0x10);
	outb(&r.bus, CMD, 0xa8);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF | STS_AUX);
	CHECK_EQ(r.aux.level, 1);
	CHECK_EQ(inb(&r.bus, DATA), 0x09);
	rig_down(&r);
}

/* A byte for the mouse while its packets wait: they are dropped, its reply is the next byte,
 * even if the output buffer already showed one of them. */
static void test_mouse_command_drops_waiting_packets(void)
{
	struct rig r;
	int reporting;

	rig_up(&r);
	outb(&r.bus, CMD, 0xd4);
	outb(&r.bus, DATA, 0xf4);
	CHECK_EQ(inb(&r.bus, DATA), 0xfa);
	i8042_mouse_motion(r.k, 1000, 0, 0, 0, &reporting);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS | STS_OBF | STS_AUX);
	outb(&r.bus, CMD, 0xd4);
	outb(&r.bus, DATA, 0xf5);
	CHECK_EQ(inb(&r.bus, DATA), 0xfa);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS);
	CHECK_EQ(i8042_mouse_motion(r.k, 1, 0, 0, 0, &reporting), 0);
	CHECK_EQ(reporting, 0);
	outb(&r.bus, CMD, 0xd4);		/* reset through the port */
	outb(&r.bus, DATA, 0xff);
	CHECK_EQ(inb(&r.bus, DATA), 0xfa);
	CHECK_EQ(inb(&r.bus, DATA), 0xaa);
	CHECK_EQ(inb(&r.bus, DATA), 0x00);
	CHECK_EQ(inb(&r.bus, STATUS), STS_SYS);
	CHECK_EQ(r.k->mouse->count.resets, 1);
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
	k = i8042_init(&bus, recorded_irq(&irq, 1), recorded_irq(&irq, 12), ev, recorded_stop(&stop),
		       err, sizeof(err));
	CHECK(k == NULL);
	CHECK_STR(err, "i8042: ports: range 0x64-0x64 overlaps other at 0x62-0x65");
	CHECK_EQ(bus.count, 1);			/* the data port it took is given back */
	iobus_unregister(&bus, &bus);
	k = i8042_init(&bus, recorded_irq(&irq, 1), recorded_irq(&irq, 12), ev, recorded_stop(&stop),
		       err, sizeof(err));
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
	outb(&r.bus, CMD, 0x60);
	outb(&r.bus, DATA, 0x07);
	outb(&r.bus, CMD, 0xd4);
	outb(&r.bus, DATA, 0xf4);
	sb_init(&sb);
	i8042_stats_json(r.k, &sb);
	CHECK_STR(sb.data, "{\"scancodesIn\":2,\"scancodesDropped\":0,\"irqs\":1,\"commands\":4,"
		  "\"resets\":1,\"auxIrqs\":0,\"auxBytes\":1}");
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
	RUN(test_aux_controller_commands);
	RUN(test_mouse_through_the_port);
	RUN(test_interleaved_keyboard_and_mouse);
	RUN(test_aux_disabled_and_masked);
	RUN(test_mouse_command_drops_waiting_packets);
	RUN(test_init_errors_and_teardown);
	RUN(test_stats_json);
	return check_done("i8042");
}
