/* The contract between qumra-vmm and guests that use its debug device (the demo guest does).
 * Shared by the helper (debugport.c, boot.c) and the demo guest; documented in PROTOCOL.md.
 *
 * Debug device, I/O ports 0x500-0x50f:
 *   0x500 RESULT   out 1/2/4 bytes: the guest reports a value; pushed to the agent as a DEBUG event.
 *   0x501 POWER    out: 1 = the guest asks to be powered off, 2 = the guest acknowledges the host's
 *                  power-off request. Either stops the vCPUs: state STOPPED + POWEROFF event.
 *                  in: 1 if the host has asked for power-off, else 0.
 *   0x504 COMMAND  in 4 bytes: pops the next command word the agent queued (0 = queue empty).
 *                  IRQ 5 is raised while the queue is non-empty (the "doorbell").
 *   0x508 BENCH    out: does nothing but count; the yardstick port for exit-rate measurements.
 *
 * A command word is (arg << 8) | op; the agent queues them with the GUEST_COMMAND request.
 *
 * Display device, I/O ports 0x510-0x52f, 32-bit registers (in 4; writes are ignored):
 *   0x510 WIDTH    framebuffer width in pixels (64..4096)
 *   0x514 HEIGHT   framebuffer height in pixels (64..2160)
 *   0x518 STRIDE   bytes per row (width * 4)
 *   0x51c ADDR     guest-physical address of the framebuffer, low 32 bits (it lies below 4 GiB:
 *                  QG_FB_GPA; the boot page tables identity-map the first 4 GiB)
 *   0x520 PTR_X    pointer position the agent last sent (POINTER), clamped to the screen
 *   0x524 PTR_Y
 *   0x528 PTR_BUTTONS  bit 0 left, bit 1 right, bit 2 middle
 *   0x52c PTR_SEQ  increments on every POINTER. Reading it re-arms the doorbell: after a POINTER
 *                  the helper queues QG_CMD_POINTER once (IRQ 5) and not again until the guest
 *                  has read PTR_SEQ; read PTR_SEQ first, then X/Y/BUTTONS.
 * The framebuffer is linear 32-bit BGRX (bytes B, G, R, X in memory; a u32 0x00RRGGBB),
 * top row first, `stride` bytes per row.
 */
#ifndef QUMRA_GUEST_ABI_H
#define QUMRA_GUEST_ABI_H

#define QG_DEBUG_BASE     0x500
#define QG_DEBUG_LEN      0x10
#define QG_PORT_RESULT    0x500
#define QG_PORT_POWER     0x501
#define QG_PORT_COMMAND   0x504
#define QG_PORT_BENCH     0x508

#define QG_POWER_REQUEST  1	/* guest -> host: please power me off */
#define QG_POWER_ACK      2	/* guest -> host: acknowledging the host's request */

#define QG_DOORBELL_IRQ   5

#define QG_FB_BASE        0x510
#define QG_FB_LEN         0x20
#define QG_FB_WIDTH       0x510
#define QG_FB_HEIGHT      0x514
#define QG_FB_STRIDE      0x518
#define QG_FB_ADDR        0x51c
#define QG_PTR_X          0x520
#define QG_PTR_Y          0x524
#define QG_PTR_BUTTONS    0x528
#define QG_PTR_SEQ        0x52c
#define QG_FB_GPA         0xD0000000u	/* inside the 3-4 GiB hole: never RAM */

/* Demo guest commands (low byte of the command word; arg = word >> 8, 24 bits). */
#define QG_CMD_HEARTBEAT    0x01	/* arg: print "tick N" every arg timer ticks (100 Hz); 0 = off */
#define QG_CMD_HALT         0x02	/* print "halt", then cli; hlt for good */
#define QG_CMD_TRIPLE_FAULT 0x03	/* print "triple fault", load an empty IDT, then fault: arg 0 page
					 * fault (unmapped address), 1 ud2, 2 int3 (kvm-pvm cannot emulate
					 * int3 here: it reports an internal error instead) */
#define QG_CMD_SPIN         0x04	/* print "spin", busy-loop without exits until the next command */
#define QG_CMD_ECHO         0x05	/* arg 1: echo serial input back; arg 0: stop echoing */
#define QG_CMD_PEEK         0x06	/* print "cell=0x%016x" of the u64 at QG_CELL_ADDR; also to RESULT */
#define QG_CMD_POWEROFF     0x07	/* print "power-off", then ask the host to power off (POWER=1) */
#define QG_CMD_EXITS        0x08	/* arg: N outs to BENCH, then print "exits done N" */
#define QG_CMD_PING         0x09	/* print "pong N" with N = arg */
#define QG_CMD_DRAW         0x0a	/* known small change: N = ++draw counter; fill the 200x100
					 * rectangle at (64,64) (at (0,0), clipped, on screens narrower
					 * than 264 or lower than 164) with a pattern from N, put the u32 N
					 * into its first pixel, print "drawn N" */
#define QG_CMD_FULL         0x0b	/* full-screen change: N = ++full counter; redraw every row from
					 * a gradient shifted by N (one rep movsq per row), then print
					 * "full N" */
#define QG_CMD_SCENE        0x0c	/* redraw the desktop scene, print "scene" */
#define QG_CMD_POINTER      0x0d	/* queued by the helper on POINTER: the guest reads PTR_SEQ and
					 * PTR_X/Y/BUTTONS and moves its cursor (no serial output) */
#define QG_CMD_DIRTY        0x0e	/* arg: write one u64 into each of arg pages per timer tick (100 Hz),
					 * going round the QG_DIRTY_PAGES pages at QG_DIRTY_BASE (needs at
					 * least 16 MiB of RAM); 0 = stop; print "dirty N" */
#define QG_CMD_HOST_POWEROFF 0xff	/* queued by the helper on STOP: guest prints "power-off requested"
					 * and acknowledges with POWER=2 */

/* The pages QG_CMD_DIRTY writes (a guest that keeps writing memory, for live migration). */
#define QG_DIRTY_BASE     0x800000
#define QG_DIRTY_PAGES    2048

/* A guest-physical u64 the host may change; the demo guest prints it on QG_CMD_PEEK. */
#define QG_CELL_ADDR      0x8000

/* The demo guest reports r15 when it is non-zero ("r15=0x%016x") after every wake-up and clears
 * it: the agent can set r15 while paused and see the guest observe it after resume. */

#endif
