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
#define QG_CMD_HOST_POWEROFF 0xff	/* queued by the helper on STOP: guest prints "power-off requested"
					 * and acknowledges with POWER=2 */

/* A guest-physical u64 the host may change; the demo guest prints it on QG_CMD_PEEK. */
#define QG_CELL_ADDR      0x8000

/* The demo guest reports r15 when it is non-zero ("r15=0x%016x") after every wake-up and clears
 * it: the agent can set r15 while paused and see the guest observe it after resume. */

#endif
