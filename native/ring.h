/* A bounded byte ring addressed by absolute positions (bytes written since start), so
 * several readers (the live console stream, scrollback requests) can each keep a cursor. */
#ifndef QVMM_RING_H
#define QVMM_RING_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct ring {
	uint8_t *buf;
	size_t size;
	uint64_t head;			/* absolute position of the next byte written */
	pthread_mutex_t lock;
};

int ring_init(struct ring *r, size_t size);
void ring_free(struct ring *r);
void ring_write(struct ring *r, const uint8_t *data, size_t len);
/* Copies up to max bytes starting at absolute *pos (clamped to the oldest byte kept) into out;
 * advances *pos; returns the count. *lost is set to the bytes skipped because they were gone. */
size_t ring_read(struct ring *r, uint64_t *pos, uint8_t *out, size_t max, uint64_t *lost);
uint64_t ring_head(struct ring *r);
/* Saved state: the bytes kept (the last min(head, size)) are out[0..n); returns n (out holds
 * r->size bytes). ring_restore makes a ring whose head is `head` and whose last n bytes are
 * data (n <= size and n <= head; the caller checked). */
size_t ring_save(struct ring *r, uint8_t *out, uint64_t *head);
void ring_restore(struct ring *r, uint64_t head, const uint8_t *data, size_t n);

#endif
