/* 16550A UART: registers, FIFO-less transmit (bytes leave at once), a receive buffer fed by
 * the agent, interrupts on IRQ 4 via the in-kernel irqchip. */
#include "serial.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* register offsets */
#define UART_RBR_THR 0	/* DLAB=1: divisor latch low */
#define UART_IER     1	/* DLAB=1: divisor latch high */
#define UART_IIR_FCR 2
#define UART_LCR     3
#define UART_MCR     4
#define UART_LSR     5
#define UART_MSR     6
#define UART_SCR     7

#define IER_RDI  0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI  0x08
#define IIR_NONE 0x01
#define IIR_MSI  0x00
#define IIR_THRI 0x02
#define IIR_RDI  0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define FCR_FIFO 0x01
#define FCR_CLRRX 0x02

/* The pending interrupt in priority order; caller holds s->lock. */
static uint8_t pending_iir(struct serial *s)
{
	if ((s->ier & IER_RLSI) && (s->lsr_extra & LSR_OE))
		return 0x06;
	if ((s->ier & IER_RDI) && s->rx_count)
		return IIR_RDI;
	if ((s->ier & IER_THRI) && s->iir_thre)
		return IIR_THRI;
	return IIR_NONE;
}

static void update_irq(struct serial *s)
{
	int level = pending_iir(s) != IIR_NONE;

	if (level != s->irq_level) {
		s->irq_level = level;
		if (level)
			s->count.irqs++;
		irq_line_set(&s->irq, level);
	}
}

static void rx_push(struct serial *s, uint8_t c)
{
	if (s->rx_count == SERIAL_RX_SIZE) {
		s->lsr_extra |= LSR_OE;
		s->count.rx_dropped++;
		return;
	}
	s->rx[(s->rx_head + s->rx_count++) % SERIAL_RX_SIZE] = c;
	s->count.rx_bytes++;
}

static void transmit(struct serial *s, uint8_t c)
{
	if (s->mcr & MCR_LOOP) {
		rx_push(s, c);
	} else {
		ring_write(&s->out, &c, 1);
		s->count.tx_bytes++;
		events_notify(s->events);
	}
	s->iir_thre = 1;	/* the holding register is empty again at once */
}

static uint8_t reg_read(struct serial *s, unsigned reg)
{
	uint8_t v;

	switch (reg) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (!s->rx_count)
			return 0;
		v = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % SERIAL_RX_SIZE;
		s->rx_count--;
		return v;
	case UART_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR_FCR:
		v = pending_iir(s);
		if (v == IIR_THRI)
			s->iir_thre = 0;	/* reading IIR acknowledges THRE */
		return v | ((s->fcr & FCR_FIFO) ? IIR_FIFO : 0);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		v = LSR_THRE | LSR_TEMT | s->lsr_extra | (s->rx_count ? LSR_DR : 0);
		s->lsr_extra = 0;
		return v;
	case UART_MSR:
		if (s->mcr & MCR_LOOP)	/* loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD */
			return (uint8_t)(((s->mcr & 0x02) << 3) | ((s->mcr & 0x01) << 5) |
					 ((s->mcr & 0x04) << 4) | ((s->mcr & 0x08) << 4));
		return s->msr;
	default:
		return s->scr;
	}
}

static void reg_write(struct serial *s, unsigned reg, uint8_t v)
{
	switch (reg) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB)
			s->dll = v;
		else
			transmit(s, v);
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			if ((v & IER_THRI) && !(s->ier & IER_THRI))
				s->iir_thre = 1;
			s->ier = v & 0x0f;
		}
		break;
	case UART_IIR_FCR:
		s->fcr = v & 0xc9;
		if (v & FCR_CLRRX)
			s->rx_head = s->rx_count = 0;
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default:		/* LSR and MSR are read-only */
		break;
	}
}

static void serial_io(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < len && offset + i < 8; i++) {
		if (is_write) {
			s->count.writes++;
			reg_write(s, (unsigned)offset + i, data[i]);
		} else {
			s->count.reads++;
			data[i] = reg_read(s, (unsigned)offset + i);
		}
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

size_t serial_input(struct serial *s, const uint8_t *data, size_t len)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = MIN(len, SERIAL_RX_SIZE - s->rx_count);
	for (size_t i = 0; i < n; i++)
		rx_push(s, data[i]);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

struct serial *serial_init(struct iobus *pio, struct irq_line irq, struct events *events,
			   char *err, size_t errlen)
{
	struct serial *s = calloc(1, sizeof(*s));
	char why[160];

	if (!s) {
		snprintf(err, errlen, "serial: out of memory");
		return NULL;
	}
	s->irq = irq;
	s->events = events;
	s->msr = 0xb0;		/* DCD, DSR, CTS: a cable is attached */
	s->lcr = 0x03;
	s->dll = 0x0c;
	pthread_mutex_init(&s->lock, NULL);
	if (ring_init(&s->out, SERIAL_RING_SIZE) < 0) {
		snprintf(err, errlen, "serial: out of memory for the %u-byte output ring",
			 SERIAL_RING_SIZE);
		serial_teardown(s);
		return NULL;
	}
	if (iobus_register(pio, SERIAL_BASE, 8, serial_io, s, "serial", why, sizeof(why)) < 0) {
		snprintf(err, errlen, "serial: ports: %s", why);
		serial_teardown(s);
		return NULL;
	}
	s->bus = pio;
	return s;
}

void serial_teardown(struct serial *s)
{
	if (!s)
		return;
	if (s->bus)
		iobus_unregister(s->bus, s);
	ring_free(&s->out);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void serial_stats_json(struct serial *s, struct sbuf *sb)
{
	sb_printf(sb, "{\"txBytes\":%llu,\"rxBytes\":%llu,\"rxDropped\":%llu,\"irqs\":%llu,"
		  "\"reads\":%llu,\"writes\":%llu}",
		  (unsigned long long)LOAD_RELAXED(s->count.tx_bytes),
		  (unsigned long long)LOAD_RELAXED(s->count.rx_bytes),
		  (unsigned long long)LOAD_RELAXED(s->count.rx_dropped),
		  (unsigned long long)LOAD_RELAXED(s->count.irqs),
		  (unsigned long long)LOAD_RELAXED(s->count.reads),
		  (unsigned long long)LOAD_RELAXED(s->count.writes));
}

/* Saved state, version 1: u32 version; u8 ier, iir_thre, lcr, mcr, lsr_extra, msr, scr, dll,
 * dlm, fcr, irq_level; u32 rx count, that many receive bytes (oldest first); u64 output ring
 * head (bytes ever written), u32 kept, the last `kept` output bytes (the scrollback). */
#define SERIAL_STATE_VERSION 1

void serial_save(struct serial *s, struct state_out *o)
{
	uint8_t *scroll = malloc(SERIAL_RING_SIZE);
	uint64_t head = 0;
	size_t kept;

	if (!scroll) {
		o->oom = 1;
		return;
	}
	pthread_mutex_lock(&s->lock);
	so_u32(o, SERIAL_STATE_VERSION);
	so_u8(o, s->ier);
	so_u8(o, (uint8_t)s->iir_thre);
	so_u8(o, s->lcr);
	so_u8(o, s->mcr);
	so_u8(o, s->lsr_extra);
	so_u8(o, s->msr);
	so_u8(o, s->scr);
	so_u8(o, s->dll);
	so_u8(o, s->dlm);
	so_u8(o, s->fcr);
	so_u8(o, (uint8_t)s->irq_level);
	so_u32(o, (uint32_t)s->rx_count);
	for (size_t i = 0; i < s->rx_count; i++)
		so_u8(o, s->rx[(s->rx_head + i) % SERIAL_RX_SIZE]);
	kept = ring_save(&s->out, scroll, &head);
	pthread_mutex_unlock(&s->lock);
	so_u64(o, head);
	so_u32(o, (uint32_t)kept);
	so_bytes(o, scroll, kept);
	free(scroll);
}

int serial_load(struct serial *s, const uint8_t *p, size_t len, int commit, char *err, size_t errlen)
{
	struct state_in in;
	uint8_t r[11];
	uint32_t version, rx_count, kept;
	const uint8_t *rx, *scroll;
	uint64_t head;

	si_init(&in, p, len);
	version = si_u32(&in);
	for (int i = 0; i < 11; i++)
		r[i] = si_u8(&in);
	rx_count = si_u32(&in);
	rx = si_bytes(&in, rx_count <= SERIAL_RX_SIZE ? rx_count : 0);
	head = si_u64(&in);
	kept = si_u32(&in);
	scroll = si_bytes(&in, kept <= SERIAL_RING_SIZE ? kept : 0);
	if (version != SERIAL_STATE_VERSION) {
		snprintf(err, errlen, "serial: state version %u, this helper reads %d", version,
			 SERIAL_STATE_VERSION);
		return -1;
	}
	if (rx_count > SERIAL_RX_SIZE || kept > SERIAL_RING_SIZE || kept > head ||
	    (kept < SERIAL_RING_SIZE && kept != head) || r[1] > 1 || r[10] > 1 || !si_done(&in)) {
		snprintf(err, errlen, "serial: malformed state (%zu bytes)", len);
		return -1;
	}
	if (!commit)
		return 0;
	pthread_mutex_lock(&s->lock);
	s->ier = r[0] & 0x0f;
	s->iir_thre = r[1];
	s->lcr = r[2];
	s->mcr = r[3] & 0x1f;
	s->lsr_extra = r[4];
	s->msr = r[5];
	s->scr = r[6];
	s->dll = r[7];
	s->dlm = r[8];
	s->fcr = r[9] & 0xc9;
	s->rx_head = 0;
	s->rx_count = rx_count;
	if (rx_count)
		memcpy(s->rx, rx, rx_count);
	ring_restore(&s->out, head, scroll, kept);
	s->irq_level = r[10];
	irq_line_set(&s->irq, s->irq_level);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
