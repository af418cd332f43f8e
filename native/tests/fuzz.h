/* Shared parts of the bounded fuzzers: a seeded generator (splitmix64), so a run is the same
 * every time for a seed, a byte mutator, the command line (iterations, seed) and exact-size
 * heap copies, so that AddressSanitizer sees any read past the input. */
#ifndef QVMM_TESTS_FUZZ_H
#define QVMM_TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

struct rng {
	uint64_t state;
};

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint32_t rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(rng_next(r) % n);
}

static inline int rng_percent(struct rng *r, unsigned percent)
{
	return rng_below(r, 100) < percent;
}

/* Bytes that matter to JSON and to the framing, to mutate with. */
static const char fuzz_interesting[] = "{}[]:,\"\\ \t\n0123456789-+.eExabtrue\x00\x01\x7f\xff";

static inline uint8_t rng_interesting(struct rng *r)
{
	return (uint8_t)fuzz_interesting[rng_below(r, sizeof(fuzz_interesting) - 1)];
}

/* Applies 1..4 random edits to buf[0..*len) (capacity cap): flip a bit, overwrite, insert or
 * delete a byte, truncate, or repeat a slice. */
static inline void mutate(struct rng *r, uint8_t *buf, size_t *len, size_t cap)
{
	unsigned edits = 1 + rng_below(r, 4);

	while (edits--) {
		size_t n = *len, at = n ? rng_below(r, (uint32_t)n) : 0;
		switch (rng_below(r, 6)) {
		case 0:
			if (n)
				buf[at] ^= (uint8_t)(1u << rng_below(r, 8));
			break;
		case 1:
			if (n)
				buf[at] = rng_interesting(r);
			break;
		case 2:
			if (n < cap) {
				memmove(buf + at + 1, buf + at, n - at);
				buf[at] = rng_interesting(r);
				(*len)++;
			}
			break;
		case 3:
			if (n) {
				memmove(buf + at, buf + at + 1, n - at - 1);
				(*len)--;
			}
			break;
		case 4:
			*len = at;
			break;
		default: {		/* repeat up to 16 of its bytes somewhere */
			uint8_t slice[16];
			size_t from = n ? rng_below(r, (uint32_t)n) : 0, k = 1 + rng_below(r, 16);
			if (k > n - from)
				k = n - from;
			if (k > cap - n)
				k = cap - n;
			memcpy(slice, buf + from, k);
			memmove(buf + at + k, buf + at, n - at);
			memcpy(buf + at, slice, k);
			*len += k;
			break;
		}
		}
	}
}

/* An exact-size heap copy (at least one byte allocated, so malloc(0) is never asked). */
static inline uint8_t *exact_copy(const void *data, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	memcpy(p, data, len);
	return p;
}

/* argv: [iterations [seed]]. */
static inline void fuzz_args(int argc, char **argv, unsigned long *iterations, uint64_t *seed)
{
	if (argc > 1)
		*iterations = strtoul(argv[1], NULL, 0);
	if (argc > 2)
		*seed = strtoull(argv[2], NULL, 0);
}

#endif
