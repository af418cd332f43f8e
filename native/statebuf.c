/* Saved-state bytes: a growable little-endian writer, a bounded reader, CRC-32. */
#include "statebuf.h"

#include <stdlib.h>
#include <string.h>

void so_init(struct state_out *o)
{
	memset(o, 0, sizeof(*o));
}

void so_free(struct state_out *o)
{
	free(o->data);
	so_init(o);
}

uint8_t *so_reserve(struct state_out *o, size_t n)
{
	if (o->oom)
		return NULL;
	if (o->cap - o->len < n) {
		size_t cap = o->cap ? o->cap : 4096;
		uint8_t *d;
		while (cap - o->len < n) {
			if (cap > SIZE_MAX / 2) {
				o->oom = 1;
				return NULL;
			}
			cap *= 2;
		}
		d = realloc(o->data, cap);
		if (!d) {
			o->oom = 1;
			return NULL;
		}
		o->data = d;
		o->cap = cap;
	}
	return o->data + o->len;
}

void so_bytes(struct state_out *o, const void *p, size_t n)
{
	uint8_t *d = so_reserve(o, n);

	if (d) {
		if (n)
			memcpy(d, p, n);
		o->len += n;
	}
}

void so_u8(struct state_out *o, uint8_t v)
{
	so_bytes(o, &v, 1);
}

void so_u16(struct state_out *o, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	so_bytes(o, b, 2);
}

void so_u32(struct state_out *o, uint32_t v)
{
	uint8_t b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	so_bytes(o, b, 4);
}

void so_u64(struct state_out *o, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	so_bytes(o, b, 8);
}

void si_init(struct state_in *in, const uint8_t *p, size_t len)
{
	in->p = p;
	in->len = len;
	in->off = 0;
	in->bad = 0;
}

const uint8_t *si_bytes(struct state_in *in, size_t n)
{
	const uint8_t *p;

	if (in->bad || in->len - in->off < n) {
		in->bad = 1;
		return NULL;
	}
	p = in->p + in->off;
	in->off += n;
	return p;
}

static uint64_t si_le(struct state_in *in, unsigned n)
{
	const uint8_t *p = si_bytes(in, n);
	uint64_t v = 0;

	for (unsigned i = 0; p && i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint8_t si_u8(struct state_in *in) { return (uint8_t)si_le(in, 1); }
uint16_t si_u16(struct state_in *in) { return (uint16_t)si_le(in, 2); }
uint32_t si_u32(struct state_in *in) { return (uint32_t)si_le(in, 4); }
uint64_t si_u64(struct state_in *in) { return si_le(in, 8); }

int si_done(const struct state_in *in)
{
	return !in->bad && in->off == in->len;
}

static uint32_t crc_table[256];

/* Filled before main (and before any thread or the sandbox): no lazy init to race on. */
__attribute__((constructor)) static void crc_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

/* The CRC register after zero bytes is a linear map of the one before (over GF(2)): a 32x32 bit
 * matrix as 32 columns. Squaring the one-byte matrix gives 2, 4, 8… bytes, so n zeros cost
 * O(log n) matrix products instead of n table steps (idle guest RAM is mostly zeros). */
static uint32_t gf2_apply(const uint32_t *m, uint32_t v)
{
	uint32_t r = 0;

	for (int i = 0; v; i++, v >>= 1)
		if (v & 1)
			r ^= m[i];
	return r;
}

static void gf2_square(uint32_t *m)
{
	uint32_t sq[32];

	for (int i = 0; i < 32; i++)
		sq[i] = gf2_apply(m, m[i]);
	memcpy(m, sq, sizeof(sq));
}

uint32_t crc32_zeros(uint32_t crc, uint64_t n)
{
	uint32_t op[32];
	uint32_t x = ~crc;

	/* One zero bit: bit 0 brings in the polynomial, every other bit shifts down. */
	op[0] = 0xEDB88320u;
	for (int i = 1; i < 32; i++)
		op[i] = 1u << (i - 1);
	for (int i = 0; i < 3; i++)
		gf2_square(op);		/* 2, 4, 8 bits: one byte */
	while (n) {
		if (n & 1)
			x = gf2_apply(op, x);
		n >>= 1;
		if (n)
			gf2_square(op);
	}
	return ~x;
}

uint32_t crc32_update(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;

	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}
