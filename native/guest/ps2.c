/* The i8042 as the demo guest drives it (see ps2.h). */
#include "ps2.h"

#define DATA    0x60
#define STATUS  0x64
#define CMD     0x64
#define STS_OBF 0x01
#define STS_AUX 0x20
#define CB_AUX_INT 0x02
#define CB_AUX_DIS 0x20
#define WAIT    100000		/* status polls before giving up on a reply */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* The next byte of the given kind (aux or not), polled; -1 after WAIT polls. */
static int wait_byte(int aux)
{
	for (int i = 0; i < WAIT; i++) {
		uint8_t st = inb(STATUS);
		if ((st & STS_OBF) && !(st & STS_AUX) == !aux)
			return inb(DATA);
	}
	return -1;
}

int ps2_mouse_enable(void)
{
	int cb, ack;

	outb(CMD, 0xad);		/* keyboard off meanwhile: its bytes must not come in between */
	outb(CMD, 0xa8);		/* aux port on */
	outb(CMD, 0x20);
	cb = wait_byte(0);
	if (cb >= 0) {
		outb(CMD, 0x60);
		outb(DATA, (uint8_t)((cb | CB_AUX_INT) & ~CB_AUX_DIS));
	}
	outb(CMD, 0xd4);		/* to the mouse: enable reporting */
	outb(DATA, 0xf4);
	ack = wait_byte(1);
	outb(CMD, 0xae);
	return cb < 0 ? -1 : ack;
}

int ps2_read_key(uint8_t *code)
{
	uint8_t st = inb(STATUS);

	if (!(st & STS_OBF) || (st & STS_AUX))
		return 0;
	*code = inb(DATA);
	return 1;
}

static uint8_t packet[3];
static int have;

int ps2_read_packet(struct ps2_packet *p)
{
	while ((inb(STATUS) & (STS_OBF | STS_AUX)) == (STS_OBF | STS_AUX)) {
		uint8_t b = inb(DATA);
		if (have == 0 && !(b & 0x08))
			continue;	/* not a first byte: resynchronise */
		packet[have++] = b;
		if (have < 3)
			continue;
		have = 0;
		/* 9-bit two's complement, sign in byte 0; PS/2 y grows upwards */
		p->dx = (int)packet[1] - (packet[0] & 0x10 ? 256 : 0);
		p->dy = -((int)packet[2] - (packet[0] & 0x20 ? 256 : 0));
		p->buttons = packet[0] & 7;
		return 1;
	}
	return 0;
}
