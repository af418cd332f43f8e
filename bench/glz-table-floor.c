/* glz-table-floor: what GLZ's dictionary hash table costs a first image on this machine, in C.
 * GLZ (like LZ) hashes the R,G,B of three pixels at every position, but into 2^20 entries shared with
 * later images, where LZ uses 2^13. This loop does only that work over a noise image (every position
 * is a literal), three ways:
 *   hashOnly      hashes and copies literal bytes;
 *   u32Table      also swaps the position into a u32 table, as a plain GLZ coder does per literal;
 *   keyAndStore   instead reads and replaces a one-byte key per entry and stores the position
 *                 (read only on a key match), as qumra's WASM coder does for a first image.
 * Their differences from hashOnly are what the table costs plain C code per pixel: the part of GLZ's
 * extra time over LZ on incompressible images (`qumra bench encode`, column ENC TIME vs LZ) that
 * no byte-exact GLZ coder avoids, since spice's table must be consulted and updated at every
 * position.
 * gcc -O2, median of 9 runs; prints JSON. Usage: glz-table-floor [WIDTH HEIGHT] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TABLE_LOG 20
#define TABLE_SIZE (1u << TABLE_LOG)
#define RUNS 9

enum mode { HASH_ONLY, U32_TABLE, KEY_AND_STORE };

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* DJB2 over R, G, B of the three BGRX pixels at p, as SPICE's LZ and GLZ hash them. */
static inline uint32_t hash3(const uint32_t *p)
{
	uint32_t h = 5381;
	for (int k = 0; k < 3; k++) {
		h = (h * 33) ^ ((p[k] >> 16) & 255);
		h = (h * 33) ^ ((p[k] >> 8) & 255);
		h = (h * 33) ^ (p[k] & 255);
	}
	return h;
}

/* One pass over n positions; returns a sum of what was read so that nothing is optimised away. */
static uint32_t pass(enum mode m, const uint32_t *px, size_t n, uint32_t *table, uint8_t *keys, uint8_t *out)
{
	uint32_t sum = 0;
	for (size_t i = 0; i + 2 < n; i++) {
		uint32_t h = hash3(px + i) & (TABLE_SIZE - 1);
		if (m == U32_TABLE) {
			sum += table[h];
			table[h] = (uint32_t)i;
		} else if (m == KEY_AND_STORE) {
			uint8_t key = (uint8_t)(((px[i] & 0xffffff) * 0x9e3779b1u) >> 24);
			if (keys[h] == key)
				sum += table[h];
			keys[h] = key;
			table[h] = (uint32_t)i;
		} else {
			sum += h;
		}
		memcpy(out, px + i, 4);
		out += 3;
	}
	return sum;
}

static double median_ms(enum mode m, const uint32_t *px, size_t n, uint32_t *table, uint8_t *keys, uint8_t *out,
			uint32_t *sink)
{
	double ms[RUNS];
	for (int r = 0; r < RUNS; r++) {
		memset(table, 0, sizeof(uint32_t) * TABLE_SIZE);
		memset(keys, 0, TABLE_SIZE);
		double t0 = now_ms();
		*sink += pass(m, px, n, table, keys, out);
		ms[r] = now_ms() - t0;
	}
	qsort(ms, RUNS, sizeof ms[0], by_value);
	return ms[RUNS / 2];
}

int main(int argc, char **argv)
{
	size_t w = argc > 2 ? strtoul(argv[1], NULL, 10) : 1920;
	size_t h = argc > 2 ? strtoul(argv[2], NULL, 10) : 1080;
	size_t n = w * h;
	uint32_t *px = malloc((n + 2) * 4);
	uint32_t *table = malloc(sizeof(uint32_t) * TABLE_SIZE);
	uint8_t *keys = malloc(TABLE_SIZE);
	uint8_t *out = malloc(n * 4);
	if (n < 3 || !px || !table || !keys || !out) {
		printf("{\"error\":\"bad size or out of memory\"}\n");
		return 1;
	}
	uint32_t x = 2463534242u, sink = 0;
	for (size_t i = 0; i < n + 2; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		px[i] = x;
	}
	median_ms(U32_TABLE, px, n, table, keys, out, &sink); /* warm-up: page faults */
	double hash_ms = median_ms(HASH_ONLY, px, n, table, keys, out, &sink);
	double table_ms = median_ms(U32_TABLE, px, n, table, keys, out, &sink);
	double keyed_ms = median_ms(KEY_AND_STORE, px, n, table, keys, out, &sink);
	printf("{\"width\":%zu,\"height\":%zu,\"hashOnlyMs\":%.2f,\"u32TableMs\":%.2f,\"keyAndStoreMs\":%.2f,"
	       "\"u32TableNsPerPixel\":%.2f,\"keyAndStoreNsPerPixel\":%.2f,\"sink\":%u}\n",
	       w, h, hash_ms, table_ms, keyed_ms, (table_ms - hash_ms) * 1e6 / n, (keyed_ms - hash_ms) * 1e6 / n, sink);
	return 0;
}
