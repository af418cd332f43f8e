/* RAM dirty logging for live migration: KVM_MEM_LOG_DIRTY_PAGES on the RAM slots (memory.c) and
 * the RAM_DIRTY reply their bitmaps are fetched into. The framebuffer's slot has its own logging
 * (framebuffer.c, DIRTY), which this never touches. */
#include "migration.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"

#define SLOT_HEADER 16		/* u64 gpa, u64 pages */

static uint64_t slot_words(const struct mem_slot *s)
{
	return (s->size / PROTO_PAGE_SIZE + 63) / 64;
}

uint64_t migration_ram_pages(const struct guest_memory *mem)
{
	return mem->size / PROTO_PAGE_SIZE;
}

static uint64_t reply_size(const struct guest_memory *mem)
{
	uint64_t n = 4;

	for (unsigned i = 0; i < mem->nr_slots; i++)
		n += SLOT_HEADER + slot_words(&mem->slots[i]) * 8;
	return n;
}

/* The reply's fixed part: slot count and each slot's gpa and pages; the words come from KVM. */
static void reply_headers(struct migration *m, const struct guest_memory *mem)
{
	uint32_t count = mem->nr_slots;
	size_t at = 4;

	memcpy(m->reply, &count, 4);	/* x86: already little-endian */
	for (unsigned i = 0; i < mem->nr_slots; i++) {
		uint64_t gpa = mem->slots[i].gpa, pages = mem->slots[i].size / PROTO_PAGE_SIZE;
		memcpy(m->reply + at, &gpa, 8);
		memcpy(m->reply + at + 8, &pages, 8);
		at += SLOT_HEADER + slot_words(&mem->slots[i]) * 8;
	}
}

static void free_reply(struct migration *m)
{
	free(m->reply);
	m->reply = NULL;
	m->reply_len = 0;
}

unsigned migration_set_dirty_log(struct migration *m, struct guest_memory *mem, int on, char *err,
				 size_t errlen)
{
	uint64_t size = reply_size(mem);

	if (!!on == m->dirty_log)
		return 0;
	if (on && size > PROTO_MAX_PAYLOAD) {
		snprintf(err, errlen, "%llu bytes of RAM need a %llu-byte RAM_DIRTY reply, above the "
			 "message limit of %u bytes", (unsigned long long)mem->size,
			 (unsigned long long)size, PROTO_MAX_PAYLOAD);
		return PROTO_E_TOO_LARGE;
	}
	if (on) {
		m->reply = calloc(1, size);
		if (!m->reply) {
			snprintf(err, errlen, "out of memory for the %llu-byte dirty bitmaps",
				 (unsigned long long)size);
			return PROTO_E_INTERNAL;
		}
		m->reply_len = size;
		reply_headers(m, mem);
	}
	if (memory_set_dirty_log(mem, on, err, errlen) < 0) {
		if (on)
			free_reply(m);
		return PROTO_E_INTERNAL;	/* as it was: all slots or none */
	}
	if (!on)
		free_reply(m);
	m->dirty_log = !!on;
	log_info("RAM dirty logging %s (%llu pages)", on ? "on" : "off",
		 (unsigned long long)migration_ram_pages(mem));
	return 0;
}

int migration_fetch_dirty(struct migration *m, struct guest_memory *mem, char *err, size_t errlen)
{
	uint64_t dirty = 0;
	size_t at = 4;

	for (unsigned i = 0; i < mem->nr_slots; i++) {
		uint8_t *words = m->reply + at + SLOT_HEADER;
		uint64_t n = slot_words(&mem->slots[i]);

		if (memory_get_dirty_log(mem, i, words, err, errlen) < 0)
			return -1;
		for (uint64_t w = 0; w < n; w++) {
			uint64_t v;
			memcpy(&v, words + w * 8, 8);	/* the words sit at 4-byte offsets */
			dirty += (uint64_t)__builtin_popcountll(v);
		}
		at += SLOT_HEADER + n * 8;
	}
	m->count.dirty_calls++;
	m->count.dirty_pages += dirty;
	return 0;
}

void migration_stats_json(const struct migration *m, struct sbuf *sb)
{
	sb_printf(sb, "{\"dirtyLog\":%s,\"dirtyCalls\":%llu,\"dirtyPages\":%llu,\"pagesRead\":%llu,"
		  "\"pagesWritten\":%llu}", m->dirty_log ? "true" : "false",
		  (unsigned long long)m->count.dirty_calls, (unsigned long long)m->count.dirty_pages,
		  (unsigned long long)m->count.pages_read, (unsigned long long)m->count.pages_written);
}

/* At exit: the slots and their logging go with the VM. */
void migration_teardown(struct migration *m)
{
	free_reply(m);
	m->dirty_log = 0;
}
