/* The live migration requests (PROTOCOL.md "Live migration"): RAM_DIRTY_LOG turns KVM's dirty
 * logging of guest RAM on or off, RAM_DIRTY fetches and clears it, READ_PAGES / WRITE_PAGES move
 * scattered pages in one round trip. The agent relays them to the destination: this sandboxed
 * helper opens no sockets of its own. */
#include "control_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration.h"
#include "util.h"

static enum vm_state state_of(struct vm *vm)
{
	enum vm_state st;

	pthread_mutex_lock(&vm->lock);
	st = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return st;
}

/* Allowed in every state: the VM has its memory for as long as the helper runs. */
static void op_dirty_log(struct server *s, const struct proto_header *h, int on)
{
	struct migration *m = &s->vm->migration;
	char err[256], json[80];
	unsigned code = migration_set_dirty_log(m, &s->vm->mem, on, err, sizeof(err));

	if (code) {
		client_error(&s->client, h->type, h->id, code, "RAM dirty logging %s: %s",
			     on ? "on" : "off", err);
		return;
	}
	snprintf(json, sizeof(json), "{\"enabled\":%s,\"pages\":%llu}", m->dirty_log ? "true" : "false",
		 (unsigned long long)migration_ram_pages(&s->vm->mem));
	client_send(&s->client, h->type, PROTO_F_REPLY, h->id, json, strlen(json));
}

static void op_ram_dirty(struct server *s, const struct proto_header *h)
{
	struct migration *m = &s->vm->migration;
	char err[256];

	if (!m->dirty_log) {
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE,
			     "RAM dirty logging is off: turn it on with RAM_DIRTY_LOG first");
		return;
	}
	if (migration_fetch_dirty(m, &s->vm->mem, err, sizeof(err)) < 0) {
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "%s", err);
		return;
	}
	client_send(&s->client, h->type, PROTO_F_REPLY, h->id, m->reply, m->reply_len);
}

/* Every run inside one RAM slot, or nothing is read or written. */
static int check_runs(struct server *s, const struct proto_header *h, const struct request *r)
{
	for (uint32_t i = 0; i < r->u.pages.count; i++) {
		uint64_t gpa;
		uint32_t pages;

		request_page_run(r, i, &gpa, &pages);
		if (!memory_gpa_to_host(&s->vm->mem, gpa, (uint64_t)pages * PROTO_PAGE_SIZE)) {
			client_error(&s->client, h->type, h->id, PROTO_E_OUT_OF_RANGE,
				     "run %u: [0x%llx, +%u pages) is not inside one RAM slot", i,
				     (unsigned long long)gpa, pages);
			return -1;
		}
	}
	return 0;
}

/* Copies each run between guest RAM and buf (the runs' bytes back to back). */
static void copy_runs(struct server *s, const struct request *r, uint8_t *buf, int to_guest)
{
	size_t at = 0;

	for (uint32_t i = 0; i < r->u.pages.count; i++) {
		uint64_t gpa;
		uint32_t pages;
		size_t len;
		uint8_t *host;

		request_page_run(r, i, &gpa, &pages);
		len = (size_t)pages * PROTO_PAGE_SIZE;
		host = memory_gpa_to_host(&s->vm->mem, gpa, len);
		if (to_guest)
			memcpy(host, buf + at, len);
		else
			memcpy(buf + at, host, len);
		at += len;
	}
}

/* Reads of a running guest are not atomic, as READ_MEM's: the dirty log catches later writes. */
static void op_read_pages(struct server *s, const struct proto_header *h, const struct request *r)
{
	size_t len = (size_t)r->u.pages.pages * PROTO_PAGE_SIZE;
	uint8_t *out;

	if (check_runs(s, h, r) < 0)
		return;
	out = malloc(len);
	if (!out) {
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	copy_runs(s, r, out, 0);
	client_send(&s->client, h->type, PROTO_F_REPLY, h->id, out, len);
	free(out);
	s->vm->migration.count.pages_read += r->u.pages.pages;
}

/* Into a destination VM, which is created or paused: a running guest would race the writes. */
static void op_write_pages(struct server *s, const struct proto_header *h, const struct request *r)
{
	enum vm_state st = state_of(s->vm);

	if (st == VM_RUNNING) {
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE,
			     "VM is running: pages are written only while it is not (pause it, or "
			     "write into a created VM)");
		return;
	}
	if (check_runs(s, h, r) < 0)
		return;
	copy_runs(s, r, (uint8_t *)r->u.pages.data, 1);
	s->vm->migration.count.pages_written += r->u.pages.pages;
	client_send(&s->client, h->type, PROTO_F_REPLY, h->id, NULL, 0);
}

void control_migrate_op(struct server *s, const struct proto_header *h, const struct request *r)
{
	switch (h->type) {
	case PROTO_RAM_DIRTY_LOG: op_dirty_log(s, h, (int)r->u.dirty_log_on); break;
	case PROTO_RAM_DIRTY: op_ram_dirty(s, h); break;
	case PROTO_READ_PAGES: op_read_pages(s, h, r); break;
	case PROTO_WRITE_PAGES: op_write_pages(s, h, r); break;
	}
}
