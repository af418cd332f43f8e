/* The 16550A UART through its ports on a bus, with a recorded IRQ line: registers, DLAB, the
 * receive buffer and FIFO control, interrupt identification and the IRQ level, loopback. */
#include <poll.h>
#include <stdlib.h>

#include "check.h"
#include "machine.h"
#include "serial.h"

#define THR 0x3f8
#define RBR 0x3f8
#define DLL 0x3f8
#define IER 0x3f9
#define DLM 0x3f9
#define IIR 0x3fa
#define FCR 0x3fa
#define LCR 0x3fb
#define MCR 0x3fc
#define LSR 0x3fd
#define MSR 0x3fe
#define SCR 0x3ff

struct rig {
	struct iobus bus;
	struct irq_recorder irq;
	struct events *events;
	struct serial *s;
};

static void rig_up(struct rig *r)
{
	char err[256] = "";

	memset(r, 0, sizeof(*r));
	r->events = events_create();
	r->s = serial_init(&r->bus, recorded_irq(&r->irq, SERIAL_IRQ), r->events, err, sizeof(err));
	CHECK(r->events && r->s);
	CHECK_STR(err, "");
}

static void rig_down(struct rig *r)
{
	serial_teardown(r->s);
	events_destroy(r->events);
}

/* The console output written so far, as a string. */
static const char *output(struct rig *r)
{
	static char buf[256];
	uint64_t pos = 0, lost;
	size_t n = ring_read(&r->s->out, &pos, (uint8_t *)buf, sizeof(buf) - 1, &lost);

	buf[n] = 0;
	return buf;
}

static void test_reset_values(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(r.bus.count, 1);
	CHECK_EQ(inb(&r.bus, LCR), 0x03);
	CHECK_EQ(inb(&r.bus, IER), 0x00);
	CHECK_EQ(inb(&r.bus, IIR), 0x01);	/* no interrupt pending, no FIFO */
	CHECK_EQ(inb(&r.bus, LSR), 0x60);	/* transmitter empty */
	CHECK_EQ(inb(&r.bus, MSR), 0xb0);	/* DCD, DSR, CTS */
	CHECK_EQ(inb(&r.bus, MCR), 0x00);
	CHECK_EQ(inb(&r.bus, RBR), 0x00);	/* nothing received */
	CHECK_EQ(r.irq.level, 0);
	rig_down(&r);
}

static void test_transmit(void)
{
	struct rig r;
	struct pollfd p;

	rig_up(&r);
	events_take(r.events);
	for (const char *c = "hi\n"; *c; c++)
		outb(&r.bus, THR, (uint8_t)*c);
	CHECK_STR(output(&r), "hi\n");
	CHECK_EQ(r.s->count.tx_bytes, 3);
	CHECK_EQ(inb(&r.bus, LSR) & 0x60, 0x60);	/* bytes leave at once */
	p = (struct pollfd){ .fd = events_fd(r.events), .events = POLLIN };
	CHECK_EQ(poll(&p, 1, 0), 1);		/* the control loop was woken */
	rig_down(&r);
}

static void test_dlab(void)
{
	struct rig r;

	rig_up(&r);
	outb(&r.bus, LCR, 0x83);
	CHECK_EQ(inb(&r.bus, DLL), 0x0c);	/* 9600 baud at reset */
	outb(&r.bus, DLL, 0x01);
	outb(&r.bus, DLM, 0x02);
	CHECK_EQ(inb(&r.bus, DLL), 0x01);
	CHECK_EQ(inb(&r.bus, DLM), 0x02);
	CHECK_STR(output(&r), "");		/* divisor writes are not output */
	outb(&r.bus, LCR, 0x03);
	CHECK_EQ(inb(&r.bus, IER), 0x00);	/* the DLM write did not reach IER */
	outb(&r.bus, THR, 'x');
	CHECK_STR(output(&r), "x");
	outb(&r.bus, LCR, 0x83);
	CHECK_EQ(inb(&r.bus, DLL), 0x01);	/* the divisor is kept */
	rig_down(&r);
}

static void test_thre_interrupt(void)
{
	struct rig r;

	rig_up(&r);
	outb(&r.bus, IER, 0x02);		/* transmitter-empty interrupt */
	CHECK_EQ(r.irq.irq, SERIAL_IRQ);
	CHECK_EQ(r.irq.level, 1);
	CHECK_EQ(inb(&r.bus, IIR), 0x02);	/* reading IIR acknowledges it */
	CHECK_EQ(r.irq.level, 0);
	CHECK_EQ(inb(&r.bus, IIR), 0x01);
	outb(&r.bus, THR, 'a');			/* empty again after the byte */
	CHECK_EQ(r.irq.level, 1);
	CHECK_EQ(r.irq.rises, 2);
	outb(&r.bus, IER, 0x00);
	CHECK_EQ(r.irq.level, 0);
	CHECK_EQ(r.s->count.irqs, 2);
	rig_down(&r);
}

static void test_receive(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(serial_input(r.s, (const uint8_t *)"ab", 2), 2);
	CHECK_EQ(inb(&r.bus, LSR), 0x61);	/* data ready */
	CHECK_EQ(r.irq.level, 0);		/* not enabled yet */
	outb(&r.bus, IER, 0x03);		/* received data + transmitter empty */
	CHECK_EQ(r.irq.level, 1);
	CHECK_EQ(inb(&r.bus, IIR), 0x04);	/* received data goes first */
	CHECK_EQ(inb(&r.bus, RBR), 'a');
	CHECK_EQ(inb(&r.bus, IIR), 0x04);
	CHECK_EQ(inb(&r.bus, RBR), 'b');
	CHECK_EQ(inb(&r.bus, LSR), 0x60);
	CHECK_EQ(inb(&r.bus, IIR), 0x02);	/* then the transmitter */
	CHECK_EQ(r.irq.level, 0);
	CHECK_EQ(inb(&r.bus, RBR), 0x00);
	rig_down(&r);
}

static void test_receive_buffer_limit(void)
{
	static uint8_t in[SERIAL_RX_SIZE + 100];
	struct rig r;
	unsigned in_order = 1;

	rig_up(&r);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7);
	CHECK_EQ(serial_input(r.s, in, sizeof(in)), SERIAL_RX_SIZE);
	CHECK_EQ(serial_input(r.s, in, 1), 0);
	for (size_t i = 0; i < SERIAL_RX_SIZE; i++)
		in_order &= inb(&r.bus, RBR) == in[i];
	CHECK(in_order);
	CHECK_EQ(inb(&r.bus, LSR) & 0x01, 0);
	CHECK_EQ(r.s->count.rx_bytes, SERIAL_RX_SIZE);
	CHECK_EQ(r.s->count.rx_dropped, 0);	/* refused bytes were never taken */
	rig_down(&r);
}

static void test_fifo_control(void)
{
	struct rig r;

	rig_up(&r);
	outb(&r.bus, FCR, 0x01);		/* FIFO on: IIR says so */
	CHECK_EQ(inb(&r.bus, IIR), 0xc1);
	serial_input(r.s, (const uint8_t *)"xyz", 3);
	outb(&r.bus, IER, 0x01);
	CHECK_EQ(inb(&r.bus, IIR), 0xc4);
	CHECK_EQ(r.irq.level, 1);
	outb(&r.bus, FCR, 0x03);		/* clear the receive FIFO */
	CHECK_EQ(inb(&r.bus, LSR), 0x60);
	CHECK_EQ(r.irq.level, 0);
	CHECK_EQ(inb(&r.bus, IIR), 0xc1);
	outb(&r.bus, FCR, 0x00);
	CHECK_EQ(inb(&r.bus, IIR), 0x01);
	rig_down(&r);
}

static void test_loopback_and_overrun(void)
{
	static uint8_t fill[SERIAL_RX_SIZE];
	struct rig r;

	rig_up(&r);
	outb(&r.bus, MCR, 0x10);		/* loopback: transmitted bytes come back */
	outb(&r.bus, THR, 'q');
	CHECK_STR(output(&r), "");
	CHECK_EQ(inb(&r.bus, RBR), 'q');
	CHECK_EQ(serial_input(r.s, fill, sizeof(fill)), SERIAL_RX_SIZE);
	outb(&r.bus, IER, 0x04);		/* line status interrupt */
	CHECK_EQ(r.irq.level, 0);
	outb(&r.bus, THR, 'z');			/* no room: overrun */
	CHECK_EQ(r.s->count.rx_dropped, 1);
	CHECK_EQ(r.irq.level, 1);
	CHECK_EQ(inb(&r.bus, IIR), 0x06);
	CHECK_EQ(inb(&r.bus, LSR), 0x63);	/* overrun + data ready; reading clears OE */
	CHECK_EQ(inb(&r.bus, LSR), 0x61);
	CHECK_EQ(r.irq.level, 0);
	rig_down(&r);
}

static void test_modem_status(void)
{
	struct rig r;

	rig_up(&r);
	outb(&r.bus, MCR, 0x1f);		/* loopback with DTR, RTS, OUT1, OUT2 */
	CHECK_EQ(inb(&r.bus, MCR), 0x1f);
	CHECK_EQ(inb(&r.bus, MSR), 0xf0);	/* DCD, RI, DSR, CTS from them */
	outb(&r.bus, MCR, 0x11);		/* DTR only */
	CHECK_EQ(inb(&r.bus, MSR), 0x20);	/* DSR */
	outb(&r.bus, MCR, 0x00);
	CHECK_EQ(inb(&r.bus, MSR), 0xb0);
	outb(&r.bus, SCR, 0x5a);
	CHECK_EQ(inb(&r.bus, SCR), 0x5a);
	rig_down(&r);
}

static void test_wide_access(void)
{
	struct rig r;

	rig_up(&r);
	outb(&r.bus, SCR, 0x33);
	CHECK_EQ(port_in(&r.bus, SCR, 2) & 0xff, 0x33);	/* the UART ends at 0x3ff */
	port_out(&r.bus, THR, 2, 'A' | (0x02 << 8));	/* THR then IER */
	CHECK_STR(output(&r), "A");
	CHECK_EQ(inb(&r.bus, IER), 0x02);
	rig_down(&r);
}

static void test_init_errors_and_teardown(void)
{
	struct iobus bus = { 0 };
	struct irq_recorder irq = { 0 };
	struct events *ev = events_create();
	char err[256] = "", why[128];
	struct serial *s;

	CHECK_EQ(iobus_register(&bus, 0x3fc, 1, NULL, &bus, "other", why, sizeof(why)), 0);
	s = serial_init(&bus, recorded_irq(&irq, SERIAL_IRQ), ev, err, sizeof(err));
	CHECK(s == NULL);
	CHECK_STR(err, "serial: ports: range 0x3f8-0x3ff overlaps other at 0x3fc-0x3fc");
	CHECK_EQ(bus.count, 1);
	iobus_unregister(&bus, &bus);
	for (int round = 0; round < 2; round++) {	/* teardown gives the ports back */
		s = serial_init(&bus, recorded_irq(&irq, SERIAL_IRQ), ev, err, sizeof(err));
		CHECK(s != NULL);
		CHECK_EQ(bus.count, 1);
		serial_teardown(s);
		CHECK_EQ(bus.count, 0);
	}
	CHECK_EQ(inb(&bus, LSR), 0xff);		/* nobody there now */
	serial_teardown(NULL);
	events_destroy(ev);
}

static void test_stats_json(void)
{
	struct rig r;
	struct sbuf sb;

	rig_up(&r);
	outb(&r.bus, THR, 'a');
	inb(&r.bus, LSR);
	serial_input(r.s, (const uint8_t *)"xy", 2);
	outb(&r.bus, IER, 0x02);
	sb_init(&sb);
	serial_stats_json(r.s, &sb);
	CHECK_STR(sb.data, "{\"txBytes\":1,\"rxBytes\":2,\"rxDropped\":0,\"irqs\":1,\"reads\":1,"
		  "\"writes\":2}");
	sb_free(&sb);
	rig_down(&r);
}

int main(void)
{
	RUN(test_reset_values);
	RUN(test_transmit);
	RUN(test_dlab);
	RUN(test_thre_interrupt);
	RUN(test_receive);
	RUN(test_receive_buffer_limit);
	RUN(test_fifo_control);
	RUN(test_loopback_and_overrun);
	RUN(test_modem_status);
	RUN(test_wide_access);
	RUN(test_init_errors_and_teardown);
	RUN(test_stats_json);
	return check_done("serial");
}
