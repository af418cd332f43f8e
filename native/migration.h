/* Live migration's state in the helper (PROTOCOL.md "Live migration"): whether guest RAM is
 * dirty-logged, the RAM_DIRTY reply buffer and the counters STATS shows as devices.migration.
 * The agent drives a migration; the helper only logs, reads and writes pages (control_migrate.c). */
#ifndef QVMM_MIGRATION_H
#define QVMM_MIGRATION_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "memory.h"

struct migration_counters {
	uint64_t dirty_calls, dirty_pages, pages_read, pages_written;
};

/* Used by the control thread only. */
struct migration {
	int dirty_log;			/* KVM_MEM_LOG_DIRTY_PAGES is on for every RAM slot */
	/* RAM_DIRTY's reply, allocated when logging is turned on and shaped as the reply (u32 slot
	 * count, then per slot u64 gpa, u64 pages and its bitmap words), so KVM_GET_DIRTY_LOG writes
	 * each slot's bitmap straight into it. */
	uint8_t *reply;
	size_t reply_len;
	struct migration_counters count;
};

/* Guest RAM pages (every RAM slot; the framebuffer is not RAM). */
uint64_t migration_ram_pages(const struct guest_memory *mem);
/* Turns RAM dirty logging on or off; doing it twice is doing it once. 0, or a PROTO_E_* code
 * with err filled (TOO_LARGE: the bitmaps would not fit one reply). */
unsigned migration_set_dirty_log(struct migration *m, struct guest_memory *mem, int on, char *err,
				 size_t errlen);
/* Fetches and clears every RAM slot's bitmap into m->reply (m->reply_len bytes); logging must be
 * on. -1 with err on failure. */
int migration_fetch_dirty(struct migration *m, struct guest_memory *mem, char *err, size_t errlen);
/* {"dirtyLog":bool,"dirtyCalls":N,"dirtyPages":N,"pagesRead":N,"pagesWritten":N} */
void migration_stats_json(const struct migration *m, struct sbuf *sb);
void migration_teardown(struct migration *m);

#endif
