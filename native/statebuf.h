/* Little-endian byte writer and bounded reader for saved state (vmstate.c and each device's
 * *_save / *_load), and the CRC-32 every section carries. A writer that failed to grow keeps
 * `oom`; a reader that ran past its end keeps `bad`, so callers check once at the end. */
#ifndef QVMM_STATEBUF_H
#define QVMM_STATEBUF_H

#include <stddef.h>
#include <stdint.h>

struct state_out {
	uint8_t *data;
	size_t len, cap;
	int oom;
};

struct state_in {
	const uint8_t *p;
	size_t len, off;
	int bad;		/* read past the end */
};

void so_init(struct state_out *o);
void so_free(struct state_out *o);
/* Room for n more bytes at data + len (which the caller fills, then adds n to len); NULL on oom. */
uint8_t *so_reserve(struct state_out *o, size_t n);
void so_bytes(struct state_out *o, const void *p, size_t n);
void so_u8(struct state_out *o, uint8_t v);
void so_u16(struct state_out *o, uint16_t v);
void so_u32(struct state_out *o, uint32_t v);
void so_u64(struct state_out *o, uint64_t v);

void si_init(struct state_in *in, const uint8_t *p, size_t len);
uint8_t si_u8(struct state_in *in);
uint16_t si_u16(struct state_in *in);
uint32_t si_u32(struct state_in *in);
uint64_t si_u64(struct state_in *in);
/* Pointer to the next n bytes (NULL and `bad` if fewer remain). */
const uint8_t *si_bytes(struct state_in *in, size_t n);
/* Whether the whole input was consumed exactly and nothing ran past it. */
int si_done(const struct state_in *in);

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320, as zlib's crc32): crc32_update(0, p, n) for a
 * buffer, continued with the previous result for the next piece. */
uint32_t crc32_update(uint32_t crc, const void *p, size_t n);
/* The same CRC continued over n zero bytes, in O(log n) steps. */
uint32_t crc32_zeros(uint32_t crc, uint64_t n);

#endif
