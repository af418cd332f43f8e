/* The console ring: absolute positions, wrap-around, overflow (lost bytes are counted and the
 * reader skips to the oldest byte kept), reads of the last N bytes, independent readers. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "ring.h"

static void put(struct ring *r, const char *s)
{
	ring_write(r, (const uint8_t *)s, strlen(s));
}

/* Reads up to max bytes from *pos as a string. */
static const char *get(struct ring *r, uint64_t *pos, size_t max, uint64_t *lost)
{
	static char buf[64];
	size_t n = ring_read(r, pos, (uint8_t *)buf, max, lost);

	buf[n] = 0;
	return buf;
}

static void test_write_read(void)
{
	struct ring r;
	uint64_t pos = 0, lost = 99;

	CHECK_EQ(ring_init(&r, 8), 0);
	CHECK_EQ(ring_head(&r), 0);
	CHECK_STR(get(&r, &pos, 8, &lost), "");
	CHECK_EQ(lost, 0);
	put(&r, "abc");
	CHECK_EQ(ring_head(&r), 3);
	CHECK_STR(get(&r, &pos, 2, &lost), "ab");	/* max is honoured */
	CHECK_EQ(pos, 2);
	CHECK_STR(get(&r, &pos, 8, &lost), "c");
	CHECK_EQ(pos, 3);
	CHECK_STR(get(&r, &pos, 8, &lost), "");
	ring_free(&r);
}

static void test_wrap(void)
{
	struct ring r;
	uint64_t pos = 0, lost;

	CHECK_EQ(ring_init(&r, 8), 0);
	put(&r, "12345");
	CHECK_STR(get(&r, &pos, 8, &lost), "12345");
	put(&r, "6789AB");			/* crosses the end of the buffer */
	CHECK_EQ(ring_head(&r), 11);
	CHECK_STR(get(&r, &pos, 8, &lost), "6789AB");
	CHECK_EQ(lost, 0);
	CHECK_EQ(pos, 11);
	ring_free(&r);
}

static void test_overflow(void)
{
	struct ring r;
	uint64_t slow = 0, pos, lost;

	CHECK_EQ(ring_init(&r, 8), 0);
	put(&r, "abcdefghij");			/* 10 bytes into 8: "ab" are gone */
	CHECK_STR(get(&r, &slow, 64, &lost), "cdefghij");
	CHECK_EQ(lost, 2);
	CHECK_EQ(slow, 10);
	put(&r, "0123456789ABCDEFGHIJ");		/* longer than the ring in one write */
	CHECK_EQ(ring_head(&r), 30);
	CHECK_STR(get(&r, &slow, 64, &lost), "CDEFGHIJ");
	CHECK_EQ(lost, 12);
	pos = 100;				/* beyond the head: clamped to it */
	CHECK_STR(get(&r, &pos, 64, &lost), "");
	CHECK_EQ(pos, 30);
	ring_free(&r);
}

static void test_last_n_bytes(void)
{
	struct ring r;
	uint64_t pos, lost;

	CHECK_EQ(ring_init(&r, 16), 0);
	put(&r, "line one\nline two\n");		/* 18 bytes: 2 already overwritten */
	pos = ring_head(&r) - 9;		/* what CONSOLE_READ does for max = 9 */
	CHECK_STR(get(&r, &pos, 9, &lost), "line two\n");
	CHECK_EQ(lost, 0);
	pos = 0;				/* more than is kept: the 16 newest */
	CHECK_STR(get(&r, &pos, 32, &lost), "ne one\nline two\n");
	CHECK_EQ(lost, 2);
	ring_free(&r);
}

static void test_independent_readers(void)
{
	struct ring r;
	uint64_t a = 0, b = 0, lost;

	CHECK_EQ(ring_init(&r, 32), 0);
	put(&r, "hello ");
	CHECK_STR(get(&r, &a, 32, &lost), "hello ");
	put(&r, "world");
	CHECK_STR(get(&r, &b, 32, &lost), "hello world");
	CHECK_STR(get(&r, &a, 32, &lost), "world");
	ring_free(&r);
}

int main(void)
{
	RUN(test_write_read);
	RUN(test_wrap);
	RUN(test_overflow);
	RUN(test_last_n_bytes);
	RUN(test_independent_readers);
	return check_done("ring");
}
