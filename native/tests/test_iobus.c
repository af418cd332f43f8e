/* The I/O bus: registration, refusal of overlapping, empty and wrapping ranges and of a full
 * bus, dispatch by range with offsets relative to the base, unclaimed accesses, removal. */
#include <stdint.h>

#include "check.h"
#include "iobus.h"

/* A device that remembers its last access. */
struct probe_dev {
	unsigned calls;
	uint64_t offset;
	bool is_write;
	unsigned len;
	uint8_t written;
};

static void probe_io(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct probe_dev *d = opaque;

	d->calls++;
	d->offset = offset;
	d->is_write = is_write;
	d->len = len;
	if (is_write)
		d->written = data[0];
	else
		for (unsigned i = 0; i < len; i++)
			data[i] = (uint8_t)(0x10 + i);
}

static int reg(struct iobus *bus, uint64_t base, uint64_t len, struct probe_dev *d,
	       const char *name, char *err)
{
	return iobus_register(bus, base, len, probe_io, d, name, err, 160);
}

static void test_register_and_dispatch(void)
{
	struct iobus bus = { 0 };
	struct probe_dev a = { 0 }, b = { 0 };
	uint8_t data[4] = { 0 };
	char err[160] = "";

	CHECK_EQ(reg(&bus, 0x3f8, 8, &a, "a", err), 0);
	CHECK_EQ(reg(&bus, 0x60, 1, &b, "b", err), 0);
	CHECK_EQ(bus.count, 2);
	CHECK(iobus_access(&bus, 0x3fd, false, data, 2));
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(a.offset, 5);			/* relative to the base */
	CHECK_EQ(a.len, 2);
	CHECK(!a.is_write);
	CHECK_EQ(data[0], 0x10);
	CHECK_EQ(data[1], 0x11);
	data[0] = 0x77;
	CHECK(iobus_access(&bus, 0x60, true, data, 1));
	CHECK_EQ(b.calls, 1);
	CHECK_EQ(b.offset, 0);
	CHECK(b.is_write);
	CHECK_EQ(b.written, 0x77);
	CHECK(iobus_access(&bus, 0x3f8, true, data, 1));	/* first byte of a */
	CHECK(iobus_access(&bus, 0x3ff, true, data, 1));	/* last byte of a */
	CHECK_EQ(a.calls, 3);
	CHECK_EQ(a.offset, 7);
	CHECK_EQ(bus.unhandled, 0);
}

static void test_unclaimed(void)
{
	struct iobus bus = { 0 };
	struct probe_dev a = { 0 };
	uint8_t data[4] = { 1, 2, 3, 4 };
	char err[160];
	struct sbuf sb;

	CHECK_EQ(reg(&bus, 0x100, 0x10, &a, "a", err), 0);
	CHECK(!iobus_access(&bus, 0xff, false, data, 4));	/* just before */
	CHECK_EQ(data[0] & data[1] & data[2] & data[3], 0xff);
	CHECK(!iobus_access(&bus, 0x110, false, data, 1));	/* just after */
	data[0] = 9;
	CHECK(!iobus_access(&bus, 0x200, true, data, 1));	/* a write is dropped */
	CHECK_EQ(data[0], 9);
	CHECK_EQ(a.calls, 0);
	CHECK_EQ(bus.unhandled, 3);
	sb_init(&sb);
	iobus_stats_json(&bus, &sb);
	CHECK_STR(sb.data, "{\"unhandled\":3}");
	sb_free(&sb);
}

static void test_overlap_refused(void)
{
	struct iobus bus = { 0 };
	struct probe_dev a = { 0 }, b = { 0 };
	char err[160] = "";

	CHECK_EQ(reg(&bus, 0x500, 0x10, &a, "debug", err), 0);
	CHECK_EQ(reg(&bus, 0x500, 0x10, &b, "same", err), -1);
	CHECK_STR(err, "range 0x500-0x50f overlaps debug at 0x500-0x50f");
	CHECK_EQ(reg(&bus, 0x4f8, 0x9, &b, "front", err), -1);	/* last byte 0x500 */
	CHECK_STR(err, "range 0x4f8-0x500 overlaps debug at 0x500-0x50f");
	CHECK_EQ(reg(&bus, 0x50f, 0x4, &b, "back", err), -1);
	CHECK_EQ(reg(&bus, 0x504, 0x1, &b, "inside", err), -1);
	CHECK_EQ(reg(&bus, 0x400, 0x200, &b, "around", err), -1);
	CHECK_EQ(bus.count, 1);
	CHECK_EQ(reg(&bus, 0x4f0, 0x10, &b, "below", err), 0);		/* adjacent is fine */
	CHECK_EQ(reg(&bus, 0x510, 0x20, &b, "above", err), 0);
	CHECK_EQ(bus.count, 3);
}

static void test_bad_ranges_and_full_bus(void)
{
	struct iobus bus = { 0 };
	struct probe_dev a = { 0 };
	char err[160] = "";

	CHECK_EQ(reg(&bus, 0x10, 0, &a, "empty", err), -1);
	CHECK_STR(err, "range 0x10+0x0 is empty or wraps");
	CHECK_EQ(reg(&bus, UINT64_MAX - 1, 4, &a, "wraps", err), -1);
	CHECK_EQ(reg(&bus, UINT64_MAX - 3, 3, &a, "top", err), 0);	/* last byte 2^64 - 2 */
	for (unsigned i = 1; i < IOBUS_MAX_RANGES; i++)
		CHECK_EQ(reg(&bus, i * 0x10, 0x10, &a, "many", err), 0);
	CHECK_EQ(bus.count, IOBUS_MAX_RANGES);
	CHECK_EQ(reg(&bus, 0x1000, 1, &a, "one more", err), -1);
	CHECK_STR(err, "the bus is full (32 ranges)");
}

static void test_unregister(void)
{
	struct iobus bus = { 0 };
	struct probe_dev a = { 0 }, b = { 0 };
	uint8_t data[1] = { 0 };
	char err[160];

	CHECK_EQ(reg(&bus, 0x60, 1, &a, "a-data", err), 0);
	CHECK_EQ(reg(&bus, 0x70, 2, &b, "b", err), 0);
	CHECK_EQ(reg(&bus, 0x64, 1, &a, "a-cmd", err), 0);
	iobus_unregister(&bus, &a);		/* both of a's ranges */
	CHECK_EQ(bus.count, 1);
	CHECK(!iobus_access(&bus, 0x60, false, data, 1));
	CHECK(!iobus_access(&bus, 0x64, false, data, 1));
	CHECK(iobus_access(&bus, 0x71, false, data, 1));
	CHECK_EQ(b.calls, 1);
	CHECK_EQ(reg(&bus, 0x60, 8, &a, "a-again", err), 0);	/* the space is free again */
	iobus_unregister(&bus, &bus);		/* not registered: nothing changes */
	CHECK_EQ(bus.count, 2);
}

int main(void)
{
	RUN(test_register_and_dispatch);
	RUN(test_unclaimed);
	RUN(test_overlap_refused);
	RUN(test_bad_ranges_and_full_bus);
	RUN(test_unregister);
	return check_done("iobus");
}
