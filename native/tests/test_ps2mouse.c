/* The PS/2 mouse on its own, without a controller: its command set and replies, the reset
 * sequence, the IntelliMouse id, movement packets (signs, screen-to-PS/2 y, splitting, 2:1
 * scaling, the wheel byte, overflow in remote mode) and its bounded queue. */
#include <stdlib.h>

#include "check.h"
#include "ps2mouse.h"

/* Takes everything queued into a hex string "fa aa 00" (empty: ""). */
static const char *drain(struct ps2mouse *m)
{
	static char out[3 * PS2MOUSE_QUEUE + 1];
	size_t n = 0;

	out[0] = 0;
	while (ps2mouse_pending(m) && n + 4 <= sizeof(out))
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%02x", n ? " " : "", ps2mouse_pop(m));
	return out;
}

/* Sends bytes and returns the replies to the last one. */
static const char *send(struct ps2mouse *m, const char *bytes, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (i)		/* a guest reads each reply before the next byte */
			drain(m);
		ps2mouse_write(m, (uint8_t)bytes[i]);
	}
	return drain(m);
}

#define SEND(m, lit) send((m), (lit), sizeof(lit) - 1)

static struct ps2mouse *mouse_up(void)
{
	char err[128] = "";
	struct ps2mouse *m = ps2mouse_init(err, sizeof(err));

	CHECK(m != NULL);
	CHECK_STR(err, "");
	return m;
}

static struct ps2mouse *reporting_mouse(void)
{
	struct ps2mouse *m = mouse_up();

	CHECK_STR(SEND(m, "\xf4"), "fa");
	CHECK(ps2mouse_reporting(m));
	return m;
}

static void test_power_on_and_reset(void)
{
	struct ps2mouse *m = mouse_up();

	CHECK_EQ(ps2mouse_pending(m), 0);
	CHECK_EQ(ps2mouse_pop(m), 0);		/* an empty queue gives 0 and stays empty */
	CHECK(!ps2mouse_reporting(m));
	CHECK_STR(SEND(m, "\xe9"), "fa 00 02 64");	/* stream, off, 1:1; 4 counts/mm; 100/s */
	CHECK_STR(SEND(m, "\xff"), "fa aa 00");
	CHECK_STR(SEND(m, "\xf2"), "fa 00");
	CHECK_STR(SEND(m, "\xf4\xe7\xe8\x01\xf3\x28\xff"), "fa aa 00");
	CHECK_STR(SEND(m, "\xe9"), "fa 00 02 64");	/* reset brings the defaults back */
	CHECK_STR(SEND(m, "\xf3\xff"), "fa aa 00");	/* reset even where an argument was due */
	CHECK_EQ(m->count.resets, 3);
	ps2mouse_teardown(m);
	ps2mouse_teardown(NULL);
}

static void test_settings_and_status(void)
{
	struct ps2mouse *m = mouse_up();

	CHECK_STR(SEND(m, "\xf4"), "fa");
	CHECK_STR(SEND(m, "\xe7"), "fa");
	CHECK_STR(SEND(m, "\xe8\x01"), "fa");	/* 2 counts/mm */
	CHECK_STR(SEND(m, "\xf3\x28"), "fa");	/* 40/s */
	ps2mouse_motion(m, 0, 0, 0, 1 | 2);		/* left and right held */
	CHECK_STR(SEND(m, "\xe9"), "fa 35 01 28");	/* enabled, 2:1, left (bit 2), right (bit 0) */
	ps2mouse_motion(m, 0, 0, 0, 4);
	CHECK_STR(SEND(m, "\xe6\xf0\xe9"), "fa 62 01 28");	/* 1:1, remote, enabled, middle (bit 1) */
	CHECK(!ps2mouse_reporting(m));			/* remote mode sends nothing by itself */
	CHECK_STR(SEND(m, "\xea"), "fa");
	CHECK(ps2mouse_reporting(m));
	CHECK_STR(SEND(m, "\xf6\xe9"), "fa 02 02 64");	/* defaults: reporting off again */
	CHECK_STR(SEND(m, "\xf4\xe9"), "fa 22 02 64");
	CHECK_STR(SEND(m, "\xf5\xe9"), "fa 02 02 64");
	ps2mouse_teardown(m);
}

static void test_bad_commands_and_arguments(void)
{
	struct ps2mouse *m = mouse_up();

	CHECK_STR(SEND(m, "\xe1"), "fe");		/* not a mouse command */
	CHECK_STR(SEND(m, "\x00"), "fe");
	CHECK_STR(SEND(m, "\xf3"), "fa");
	CHECK_STR(SEND(m, "\x07"), "fe");		/* 7/s is not a rate */
	CHECK_STR(SEND(m, "\xe8"), "fa");
	CHECK_STR(SEND(m, "\x04"), "fe");		/* resolutions are 0..3 */
	CHECK_STR(SEND(m, "\xe8\x03\xe9"), "fa 00 03 64");
	CHECK_STR(SEND(m, "\xf3\xc8\xe9"), "fa 00 03 c8");
	CHECK_EQ(m->count.bad_commands, 4);
	CHECK_EQ(m->count.commands, 8);
	CHECK_STR(SEND(m, "\xe8\xf4"), "fe");		/* a command byte where an argument is due */
	CHECK(!ps2mouse_reporting(m));		/* arguments are not commands */
	ps2mouse_teardown(m);
}

static void test_intellimouse_id(void)
{
	struct ps2mouse *m = mouse_up();

	CHECK_STR(SEND(m, "\xf3\xc8\xf3\x64\xf2\xf3\x50\xf2"), "fa 00");	/* broken up: no */
	CHECK_STR(SEND(m, "\xf3\xc8\xf3\x64\xf3\x32"), "fe");	/* 50 is not a rate */
	CHECK_STR(SEND(m, "\xf2"), "fa 00");
	CHECK_STR(SEND(m, "\xf3\xc8\xf3\x64\xf3\x50"), "fa");
	CHECK_STR(SEND(m, "\xf2"), "fa 03");
	CHECK_STR(SEND(m, "\xf3\xc8\xf3\xc8\xf3\x50\xf2"), "fa 03");	/* no IntelliMouse Explorer */
	CHECK_STR(SEND(m, "\xe9"), "fa 00 02 50");
	CHECK_STR(SEND(m, "\xf4"), "fa");
	CHECK_EQ(ps2mouse_motion(m, 1, 1, 1, 0), 1);	/* four bytes now: the wheel */
	CHECK_STR(drain(m), "28 01 ff 01");
	CHECK_EQ(ps2mouse_motion(m, 0, 0, 20, 0), 3);	/* 7, 7, 6 notches */
	CHECK_STR(drain(m), "08 00 00 07 08 00 00 07 08 00 00 06");
	CHECK_EQ(ps2mouse_motion(m, 0, 0, -9, 0), 2);
	CHECK_STR(drain(m), "08 00 00 f9 08 00 00 fe");
	CHECK_STR(SEND(m, "\xff\xf2"), "fa 00");		/* reset forgets it */
	CHECK_STR(SEND(m, "\xf4"), "fa");
	CHECK_EQ(ps2mouse_motion(m, 0, 0, 20, 0), 1);	/* no wheel without id 3 */
	CHECK_STR(drain(m), "08 00 00");
	ps2mouse_teardown(m);
}

static void test_packets(void)
{
	struct ps2mouse *m = mouse_up();

	CHECK_EQ(ps2mouse_motion(m, 5, -3, 0, 1), 0);	/* not reporting yet: dropped */
	CHECK_STR(drain(m), "");
	CHECK_EQ(m->count.motions_ignored, 1);
	CHECK_STR(SEND(m, "\xf4"), "fa");
	CHECK_EQ(ps2mouse_motion(m, 5, -3, 0, 1), 1);	/* up on screen is +y in PS/2 */
	CHECK_STR(drain(m), "09 05 03");
	CHECK_EQ(ps2mouse_motion(m, -1, 1, 0, 4), 1);	/* both signs, middle button */
	CHECK_STR(drain(m), "3c ff ff");
	CHECK_EQ(ps2mouse_motion(m, 255, -255, 0, 2), 1);	/* the most one packet carries */
	CHECK_STR(drain(m), "0a ff ff");
	CHECK_EQ(ps2mouse_motion(m, 0, 0, 0, 0), 1);	/* a button change alone */
	CHECK_STR(drain(m), "08 00 00");
	CHECK_EQ(ps2mouse_motion(m, 0, 0, 0, 0xff), 1);	/* only three buttons */
	CHECK_STR(drain(m), "0f 00 00");
	CHECK_EQ(m->count.motions, 6);
	CHECK_EQ(m->count.packets, 5);
	ps2mouse_teardown(m);
}

static void test_splitting(void)
{
	struct ps2mouse *m = reporting_mouse();

	CHECK_EQ(ps2mouse_motion(m, -600, 0, 0, 0), 3);	/* -255, -255, -90 */
	CHECK_STR(drain(m), "18 01 00 18 01 00 18 a6 00");
	CHECK_EQ(ps2mouse_motion(m, 300, 600, 0, 1), 3);	/* x 255, 45, 0; y -255, -255, -90 */
	CHECK_STR(drain(m), "29 ff 01 29 2d 01 29 00 a6");
	CHECK_EQ(ps2mouse_motion(m, 100000, 0, 0, 0), 17);	/* clamped to 4096 first */
	CHECK_EQ(ps2mouse_pending(m), 17 * 3);
	ps2mouse_teardown(m);
}

static void test_scaling(void)
{
	struct ps2mouse *m = reporting_mouse();

	CHECK_STR(SEND(m, "\xe7"), "fa");
	CHECK_EQ(ps2mouse_motion(m, 1, -2, 0, 0), 1);
	CHECK_STR(drain(m), "08 01 01");
	CHECK_EQ(ps2mouse_motion(m, 3, 4, 0, 0), 1);
	CHECK_STR(drain(m), "28 03 fa");			/* 3 -> 3, -4 -> -6 */
	CHECK_EQ(ps2mouse_motion(m, 5, 6, 0, 0), 1);
	CHECK_STR(drain(m), "28 09 f4");			/* 5 -> 9, -6 -> -12 */
	CHECK_EQ(ps2mouse_motion(m, 200, 0, 0, 0), 2);	/* 127 and 73, doubled: never overflows */
	CHECK_STR(drain(m), "08 fe 00 08 92 00");
	ps2mouse_teardown(m);
}

static void test_remote_mode_and_overflow(void)
{
	struct ps2mouse *m = reporting_mouse();

	CHECK_STR(SEND(m, "\xf0"), "fa");
	CHECK_EQ(ps2mouse_motion(m, 600, -500, 0, 1), 0);
	CHECK_EQ(ps2mouse_motion(m, 400, -1500, 0, 1), 0);	/* kept until read */
	CHECK_STR(drain(m), "");
	CHECK_STR(SEND(m, "\xeb"), "fa c9 ff ff");	/* 1000, +2000: clamped, both overflow bits */
	CHECK_STR(SEND(m, "\xeb"), "fa 09 00 00");	/* read: nothing left */
	ps2mouse_motion(m, -300, 2, 0, 0);
	CHECK_STR(SEND(m, "\xeb"), "fa 78 00 fe");	/* -256 with X overflow; y -2 */
	ps2mouse_motion(m, 7, 7, 0, 0);
	CHECK_STR(SEND(m, "\xea\xf0\xeb"), "fa 08 00 00");	/* a mode change clears it */
	ps2mouse_teardown(m);
}

static void test_queue_limit(void)
{
	struct ps2mouse *m = reporting_mouse();
	unsigned fitted = 0;

	while (ps2mouse_motion(m, 4096, 0, 0, 0) == 17)	/* 51 bytes each */
		fitted++;
	CHECK_EQ(fitted, PS2MOUSE_QUEUE / 51);
	CHECK_EQ(ps2mouse_pending(m), fitted * 51);	/* no partial packet went in */
	CHECK_EQ(m->count.packets_dropped, 17);
	CHECK_EQ(ps2mouse_motion(m, 1, 0, 0, 0), 0);	/* 2 bytes of room: not a packet */
	CHECK_EQ(m->count.packets_dropped, 18);
	for (int i = 0; i < 3; i++)
		ps2mouse_pop(m);
	CHECK_EQ(ps2mouse_motion(m, 1, 0, 0, 0), 1);
	drain(m);
	CHECK_EQ(ps2mouse_motion(m, 4096, 0, 0, 0), 17);	/* room again */
	ps2mouse_teardown(m);
}

/* A byte from the host drops the stream it has not delivered, so the reply comes next. */
static void test_command_drops_stream(void)
{
	struct ps2mouse *m = reporting_mouse();

	ps2mouse_motion(m, 10, 10, 0, 0);
	ps2mouse_motion(m, 10, 10, 0, 0);
	CHECK_EQ(ps2mouse_pending(m), 6);
	ps2mouse_write(m, 0xf5);
	CHECK_STR(drain(m), "fa");
	ps2mouse_teardown(m);
}

static void test_resend_and_wrap(void)
{
	struct ps2mouse *m = mouse_up();

	CHECK_STR(SEND(m, "\xfe"), "fa");		/* nothing sent yet */
	CHECK_STR(SEND(m, "\xf4"), "fa");
	ps2mouse_motion(m, 2, 0, 0, 1);
	CHECK_STR(drain(m), "09 02 00");
	CHECK_STR(SEND(m, "\xfe"), "09 02 00");		/* the last packet again */
	CHECK_STR(SEND(m, "\xee"), "fa");		/* wrap mode: bytes come back */
	CHECK(!ps2mouse_reporting(m));
	CHECK_STR(SEND(m, "\x12\xf2\xe9"), "e9");
	CHECK_STR(SEND(m, "\xec"), "fa");
	CHECK(ps2mouse_reporting(m));
	CHECK_STR(SEND(m, "\xf2"), "fa 00");
	CHECK_STR(SEND(m, "\xee\xff"), "fa aa 00");	/* reset leaves wrap mode too */
	CHECK_STR(SEND(m, "\xf2"), "fa 00");
	ps2mouse_teardown(m);
}

static void test_stats_json(void)
{
	struct ps2mouse *m = mouse_up();
	struct sbuf sb;

	ps2mouse_motion(m, 1, 1, 0, 0);
	SEND(m, "\xff\xf4\xe1\xf3\xc8\xf3\x64\xf3\x50");
	ps2mouse_motion(m, 1, 1, 0, 0);
	sb_init(&sb);
	ps2mouse_stats_json(m, &sb);
	CHECK_STR(sb.data, "{\"motions\":2,\"motionsIgnored\":1,\"packets\":1,\"packetsDropped\":0,"
		  "\"commands\":6,\"badCommands\":1,\"resets\":1,\"id\":3,\"reporting\":true}");
	sb_free(&sb);
	ps2mouse_teardown(m);
}

int main(void)
{
	RUN(test_power_on_and_reset);
	RUN(test_settings_and_status);
	RUN(test_bad_commands_and_arguments);
	RUN(test_intellimouse_id);
	RUN(test_packets);
	RUN(test_splitting);
	RUN(test_scaling);
	RUN(test_remote_mode_and_overflow);
	RUN(test_queue_limit);
	RUN(test_command_drops_stream);
	RUN(test_resend_and_wrap);
	RUN(test_stats_json);
	return check_done("ps2mouse");
}
