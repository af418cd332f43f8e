/* The demo guest's desktop on the helper's framebuffer (guest-abi.h display registers).
 * All drawing runs with interrupts off, outside interrupt handlers, and uses few large string
 * instructions (rep stosd / rep movsd per row) because guest code may be emulated. */
#ifndef QG_DISPLAY_H
#define QG_DISPLAY_H

#include <stdint.h>

/* Reads the geometry and draws the desktop scene; 0 if there is no usable framebuffer. */
int display_init(void);
void display_scene(void);
/* QG_CMD_DRAW: the known small change; returns its counter N (first pixel = N). */
uint32_t display_draw(void);
/* QG_CMD_FULL: the full-screen change; returns its counter N. */
uint32_t display_full(void);
struct display_pointer {
	int x, y;
	uint32_t buttons;
};

/* QG_CMD_POINTER: reads the pointer registers and moves the cursor there; 1 with the new state
 * in *p if the position or the buttons changed. */
int display_pointer(struct display_pointer *p);
/* A mouse packet: moves the cursor by dx, dy (clamped to the screen) with these buttons. */
void display_move(int dx, int dy, uint32_t buttons);
/* A scancode (set 1) from the i8042: printable make codes are typed into the terminal window. */
void display_key(uint8_t code);
/* Redraws the clock in the taskbar. */
void display_clock(uint64_t seconds);

#endif
