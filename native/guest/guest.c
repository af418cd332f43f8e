/* qumra demo guest: draws a desktop on the framebuffer (display.c), prints a banner on COM1,
 * then obeys commands from the debug device's mailbox (guest-abi.h) and its serial console,
 * types keyboard input into its terminal window and moves its cursor with the pointer (absolute,
 * from the display registers) and the PS/2 mouse (relative, ps2.c), reporting both on COM1.
 * Everything happens in interrupt handlers or right after a wake-up from hlt, so an idle guest
 * costs little (a 100 Hz timer tick, a clock redraw per second); each event does only a little
 * work, because on kvm-pvm hosts guest code is emulated. */
#include <stdint.h>

#include "display.h"
#include "guest-abi.h"
#include "ps2.h"

#define COM1 0x3f8
#define PIC1 0x20
#define PIC2 0xa0

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

struct idt_gate {
	uint16_t off_lo, sel;
	uint8_t ist, type;
	uint16_t off_mid;
	uint32_t off_hi, zero;
} __attribute__((packed));

struct idt_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

extern const uint64_t isr_table[48];
static struct idt_gate idt[48] __attribute__((aligned(16)));

#define QUEUE 64
static volatile uint32_t cmd_queue[QUEUE];
static volatile unsigned cmd_head, cmd_count;
static volatile uint64_t ticks;
static uint32_t dirty_per_tick, dirty_next;
static volatile int heartbeat_due;
static unsigned heartbeat_period, heartbeat_count;
static volatile int echo;
static volatile uint8_t key_queue[QUEUE];
static volatile unsigned key_head, key_count;
static volatile struct ps2_packet packet_queue[QUEUE];
static volatile unsigned packet_head, packet_count;
static volatile int clock_due;
static int have_display;

static void putc(char c) { outb(COM1, (uint8_t)c); }
static void puts(const char *s) { while (*s) putc(*s++); }

static void puthex(uint64_t v, int digits)
{
	puts("0x");
	for (int i = digits - 1; i >= 0; i--)
		putc("0123456789abcdef"[(v >> (i * 4)) & 0xf]);
}

static void putdec(uint64_t v)
{
	char buf[24];
	int n = 0;

	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		putc(buf[--n]);
}

static void putint(int v)
{
	if (v < 0)
		putc('-');
	putdec(v < 0 ? -(uint64_t)(int64_t)v : (uint64_t)v);
}

static void __attribute__((noreturn)) stop_here(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

static void pic_init(void)
{
	outb(PIC1, 0x11); outb(PIC2, 0x11);	/* ICW1: edge, cascade, ICW4 */
	outb(PIC1 + 1, 0x20); outb(PIC2 + 1, 0x28);	/* vectors 0x20.. and 0x28.. */
	outb(PIC1 + 1, 0x04); outb(PIC2 + 1, 0x02);
	outb(PIC1 + 1, 0x01); outb(PIC2 + 1, 0x01);
	/* unmask IRQ 1 (keyboard), 2 (cascade), 4 (COM1), 5 (doorbell), 12 (mouse); the timer
	 * when asked */
	outb(PIC1 + 1, (uint8_t)~((1 << 1) | (1 << 2) | (1 << 4) | (1 << QG_DOORBELL_IRQ)));
	outb(PIC2 + 1, (uint8_t)~(1 << (12 - 8)));
}

static void timer_start(void)
{
	outb(0x43, 0x34);		/* channel 0, lo/hi, rate generator */
	outb(0x40, 0x9b);		/* 1193182 / 11931 = 100 Hz */
	outb(0x40, 0x2e);
	outb(PIC1 + 1, inb(PIC1 + 1) & (uint8_t)~1);
}

static void idt_init(void)
{
	uint16_t cs;
	struct idt_ptr p = { sizeof(idt) - 1, (uint64_t)idt };

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	for (int i = 0; i < 48; i++) {
		uint64_t a = isr_table[i];
		idt[i] = (struct idt_gate){ (uint16_t)a, cs, 0, 0x8e, (uint16_t)(a >> 16),
					    (uint32_t)(a >> 32), 0 };
	}
	__asm__ volatile("lidt %0" :: "m"(p));
}

static void queue_command(uint32_t w)
{
	if (w && cmd_count < QUEUE) {
		cmd_queue[(cmd_head + cmd_count) % QUEUE] = w;
		cmd_count++;
	}
}

/* Keys typed on the serial console drive the demo like the command port does (see the banner). */
static uint32_t console_command(uint8_t c)
{
	switch (c) {
	case 'p': return QG_CMD_PEEK;
	case 'e': return QG_CMD_ECHO | (1u << 8);
	case 't': return QG_CMD_HEARTBEAT | (100u << 8);
	case 'q': return QG_CMD_HEARTBEAT;
	case '0': return QG_CMD_DIRTY;
	case '1': return QG_CMD_DIRTY | (16u << 8);
	case '2': return QG_CMD_DIRTY | (64u << 8);
	case '3': return QG_CMD_DIRTY | (256u << 8);
	case 'h': return QG_CMD_HALT;
	case 'o': return QG_CMD_POWEROFF;
	case 'x': return QG_CMD_TRIPLE_FAULT;
	case '?': return QG_CMD_PING;
	case 'b': return QG_CMD_EXITS | (100000u << 8);
	case 'd': return QG_CMD_DRAW;
	case 'f': return QG_CMD_FULL;
	case 'r': return QG_CMD_SCENE;
	default: return 0;
	}
}

void isr_dispatch(uint64_t vec)
{
	if (vec < 32) {
		puts("exception ");
		putdec(vec);
		putc('\n');
		stop_here();
	}
	switch (vec - 32) {
	case 0:
		ticks++;
		for (uint32_t i = 0; i < dirty_per_tick; i++) {
			*(volatile uint64_t *)(uintptr_t)(QG_DIRTY_BASE + (uint64_t)dirty_next * 4096) = ticks;
			dirty_next = (dirty_next + 1) % QG_DIRTY_PAGES;
		}
		if (ticks % 100 == 0)
			clock_due = 1;
		if (heartbeat_period && ticks % heartbeat_period == 0)
			heartbeat_due = 1;
		break;
	case 1:		/* keyboard bytes only: a mouse byte waits for IRQ 12 */
		for (uint8_t code; ps2_read_key(&code);) {
			puts("kbd ");
			puthex(code, 2);
			putc('\n');
			if (key_count < QUEUE) {
				key_queue[(key_head + key_count) % QUEUE] = code;
				key_count++;
			}
		}
		break;
	case 4:
		(void)inb(COM1 + 2);
		while (inb(COM1 + 5) & 1) {
			uint8_t c = inb(COM1);
			if (echo)
				putc((char)c);
			else
				queue_command(console_command(c));
		}
		break;
	case QG_DOORBELL_IRQ:
		for (uint32_t w; (w = inl(QG_PORT_COMMAND)) != 0;)
			queue_command(w);
		break;
	case 12:
		for (struct ps2_packet p; ps2_read_packet(&p);) {
			if (packet_count < QUEUE) {
				packet_queue[(packet_head + packet_count) % QUEUE] = p;
				packet_count++;
			}
		}
		break;
	}
	if (vec >= 40)
		outb(PIC2, 0x20);
	outb(PIC1, 0x20);
}

static void print_pointer(const char *what, int x, int y, uint32_t buttons)
{
	puts(what);
	putint(x);
	putc(' ');
	putint(y);
	putc(' ');
	putdec(buttons);
	putc('\n');
}

static void run_command(uint32_t word)
{
	uint32_t arg = word >> 8;

	switch (word & 0xff) {
	case QG_CMD_HEARTBEAT:
		heartbeat_period = arg;
		if (arg)
			timer_start();
		puts("heartbeat ");
		putdec(arg);
		putc('\n');
		break;
	case QG_CMD_HALT:
		puts("halt\n");
		stop_here();
	case QG_CMD_TRIPLE_FAULT: {
		struct idt_ptr none = { 0, 0 };
		puts("triple fault\n");
		/* arg picks the first fault: 0 page fault on an unmapped address, 1 ud2, 2 int3 */
		if (arg == 1)
			__asm__ volatile("lidt %0; ud2" :: "m"(none));
		else if (arg == 2)
			__asm__ volatile("lidt %0; int3" :: "m"(none));
		else
			__asm__ volatile("lidt %0; movq (%1), %%rax" :: "m"(none), "r"(0x7fff00000000ull) : "rax");
		stop_here();
	}
	case QG_CMD_SPIN:
		puts("spin\n");
		__asm__ volatile("sti");
		while (!cmd_count)
			__asm__ volatile("pause");	/* no exits: a pure busy loop */
		__asm__ volatile("cli");
		break;
	case QG_CMD_ECHO:
		echo = arg != 0;
		puts(echo ? "echo on\n" : "echo off\n");
		break;
	case QG_CMD_PEEK: {
		uint64_t v = *(volatile uint64_t *)QG_CELL_ADDR;
		puts("cell=");
		puthex(v, 16);
		putc('\n');
		outl(QG_PORT_RESULT, (uint32_t)v);
		break;
	}
	case QG_CMD_POWEROFF:
		puts("power-off\n");
		outb(QG_PORT_POWER, QG_POWER_REQUEST);
		stop_here();
	case QG_CMD_EXITS: {
		uint32_t n = arg;
		if (n)
			__asm__ volatile("1: outb %%al, %%dx; dec %%ecx; jnz 1b"
					 : "+c"(n) : "a"(0), "d"(QG_PORT_BENCH) : "memory");
		puts("exits done ");
		putdec(arg);
		putc('\n');
		break;
	}
	case QG_CMD_PING:
		puts("pong ");
		putdec(arg);
		putc('\n');
		break;
	/* The marker goes out once the pixels are in place: printing its first word before the work
	 * made "full " show up a whole redraw (over a second at 1920x1080 on kvm-pvm) too early. */
	case QG_CMD_DRAW: {
		uint32_t n = display_draw();
		puts("drawn ");
		putdec(n);
		putc('\n');
		break;
	}
	case QG_CMD_FULL: {
		uint32_t n = display_full();
		puts("full ");
		putdec(n);
		putc('\n');
		break;
	}
	case QG_CMD_SCENE:
		if (have_display)
			display_scene();
		puts("scene\n");
		break;
	case QG_CMD_POINTER: {
		struct display_pointer p;
		if (display_pointer(&p))
			print_pointer("ptr ", p.x, p.y, p.buttons);
		break;
	}
	case QG_CMD_DIRTY:
		dirty_per_tick = arg > QG_DIRTY_PAGES ? QG_DIRTY_PAGES : arg;
		if (arg)
			timer_start();
		puts("dirty ");
		putdec(dirty_per_tick);
		putc('\n');
		break;
	case QG_CMD_HOST_POWEROFF:
		puts("power-off requested\n");
		outb(QG_PORT_POWER, QG_POWER_ACK);
		stop_here();
	default:
		puts("unknown command ");
		puthex(word, 8);
		putc('\n');
	}
}

/* Called from the idle loop with interrupts off after every wake-up; r15 as it was. */
void guest_poll(uint64_t r15)
{
	if (r15) {
		puts("r15=");
		puthex(r15, 16);
		putc('\n');
	}
	while (cmd_count) {
		uint32_t w = cmd_queue[cmd_head];
		cmd_head = (cmd_head + 1) % QUEUE;
		cmd_count--;
		run_command(w);
	}
	while (packet_count) {
		struct ps2_packet p = packet_queue[packet_head];
		packet_head = (packet_head + 1) % QUEUE;
		packet_count--;
		print_pointer("mouse ", p.dx, p.dy, p.buttons);	/* as the packet said it */
		display_move(p.dx, p.dy, p.buttons);
	}
	while (key_count) {
		uint8_t code = key_queue[key_head];
		key_head = (key_head + 1) % QUEUE;
		key_count--;
		display_key(code);
	}
	if (clock_due) {
		clock_due = 0;
		display_clock(ticks / 100);
	}
	if (heartbeat_due) {
		heartbeat_due = 0;
		puts("tick ");
		putdec(++heartbeat_count);
		putc('\n');
	}
}

void guest_main(void)
{
	int mouse;

	idt_init();
	pic_init();
	outb(COM1 + 1, 0x01);		/* interrupt on received data */
	outb(COM1 + 4, 0x08);		/* OUT2: route the UART interrupt */
	have_display = display_init();	/* the desktop is on screen before the banner */
	mouse = ps2_mouse_enable();
	timer_start();			/* 100 Hz: the taskbar clock (and heartbeats) */
	puts("qumra demo guest\n");
	puts("keys: p peek cell, t ticks on, q ticks off, e echo, ? ping, o power off, h halt, x triple fault, b 100000 port exits, d draw, f full screen, r redraw, 0-3 write memory (off, 16, 64, 256 pages per tick)\n");
	if (!have_display)
		puts("no framebuffer\n");
	if (mouse != 0xfa) {
		puts("no mouse ");
		putint(mouse);
		putc('\n');
	}
}
