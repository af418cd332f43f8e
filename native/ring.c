/* Bounded byte ring with absolute positions (console scrollback and streaming). */
#include "ring.h"

#include <stdlib.h>
#include <string.h>

int ring_init(struct ring *r, size_t size)
{
	memset(r, 0, sizeof(*r));
	r->buf = malloc(size);
	if (!r->buf)
		return -1;
	r->size = size;
	pthread_mutex_init(&r->lock, NULL);
	return 0;
}

void ring_free(struct ring *r)
{
	free(r->buf);
	r->buf = NULL;
}

void ring_write(struct ring *r, const uint8_t *data, size_t len)
{
	pthread_mutex_lock(&r->lock);
	if (len > r->size) {
		r->head += len - r->size;
		data += len - r->size;
		len = r->size;
	}
	while (len) {
		size_t at = (size_t)(r->head % r->size);
		size_t n = r->size - at < len ? r->size - at : len;
		memcpy(r->buf + at, data, n);
		r->head += n;
		data += n;
		len -= n;
	}
	pthread_mutex_unlock(&r->lock);
}

size_t ring_read(struct ring *r, uint64_t *pos, uint8_t *out, size_t max, uint64_t *lost)
{
	size_t done = 0;
	uint64_t oldest;

	pthread_mutex_lock(&r->lock);
	oldest = r->head > r->size ? r->head - r->size : 0;
	*lost = 0;
	if (*pos < oldest) {
		*lost = oldest - *pos;
		*pos = oldest;
	}
	if (*pos > r->head)
		*pos = r->head;
	while (done < max && *pos < r->head) {
		size_t at = (size_t)(*pos % r->size);
		size_t n = r->size - at;
		if (n > r->head - *pos)
			n = (size_t)(r->head - *pos);
		if (n > max - done)
			n = max - done;
		memcpy(out + done, r->buf + at, n);
		done += n;
		*pos += n;
	}
	pthread_mutex_unlock(&r->lock);
	return done;
}

uint64_t ring_head(struct ring *r)
{
	uint64_t h;

	pthread_mutex_lock(&r->lock);
	h = r->head;
	pthread_mutex_unlock(&r->lock);
	return h;
}

size_t ring_save(struct ring *r, uint8_t *out, uint64_t *head)
{
	uint64_t h = ring_head(r), pos = h > r->size ? h - r->size : 0, lost;
	size_t n = ring_read(r, &pos, out, r->size, &lost);

	*head = pos;		/* where the bytes read end, even if one was written meanwhile */
	return n;
}

void ring_restore(struct ring *r, uint64_t head, const uint8_t *data, size_t n)
{
	pthread_mutex_lock(&r->lock);
	r->head = head - n;
	pthread_mutex_unlock(&r->lock);
	ring_write(r, data, n);
}
