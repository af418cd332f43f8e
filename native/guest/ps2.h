/* The demo guest's side of the i8042: turning the PS/2 mouse on, and reading keyboard and mouse
 * bytes apart (status bit 5 says whose byte the output buffer holds), mouse bytes assembled into
 * packets. */
#ifndef QG_PS2_H
#define QG_PS2_H

#include <stdint.h>

/* A decoded mouse packet in screen coordinates (dy positive down). */
struct ps2_packet {
	int dx, dy;
	uint32_t buttons;	/* bit 0 left, 1 right, 2 middle */
};

/* Enables the aux port and its interrupt (IRQ 12) and tells the mouse to report; polled, with
 * interrupts off. Returns the mouse's answer to 0xF4 (0xFA), or -1 if nothing came. */
int ps2_mouse_enable(void);
/* Takes one keyboard byte if the output buffer holds one; 0 if it is empty or the mouse's. */
int ps2_read_key(uint8_t *code);
/* Takes mouse bytes while the output buffer holds them; 1 with *p once a packet is complete,
 * 0 when there are no more. Bytes that cannot start a packet (bit 3 clear) are skipped. */
int ps2_read_packet(struct ps2_packet *p);

#endif
