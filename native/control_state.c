/* The VM state requests (PROTOCOL.md "VM state"): SAVE_STATE and LOAD_STATE move the state blob
 * (vmstate.c) in chunks of at most 1 MiB, RAM_MAP says which RAM ranges hold data, RAM_CHECKSUM
 * hashes all of RAM. RAM itself moves with READ_MEM / WRITE_MEM: the agent, not this sandboxed
 * helper, reads and writes snapshot files. */
#include "control_ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serial.h"
#include "util.h"
#include "vcpu.h"
#include "vmstate.h"

#define PARK_TIMEOUT_MS 5000

static enum vm_state state_of(struct vm *vm)
{
	enum vm_state st;

	pthread_mutex_lock(&vm->lock);
	st = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return st;
}

void control_state_drop(struct server *s)
{
	so_free(&s->xfer.saved);
	s->xfer.have_saved = 0;
	free(s->xfer.upload);
	s->xfer.upload = NULL;
	s->xfer.upload_total = s->xfer.upload_received = 0;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);	/* x86: already little-endian */
}

/* Offset 0 takes a fresh state; later offsets read the kept one. */
static void op_save(struct server *s, const struct proto_header *h, const struct request *r)
{
	struct state_xfer *x = &s->xfer;
	enum vm_state st = state_of(s->vm);
	uint64_t off = r->u.state.offset, n;
	char err[256];
	uint8_t *out;

	if (st != VM_PAUSED && st != VM_CREATED) {
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE,
			     "VM is %s: its state is saved only while paused (or created)",
			     vm_state_name(st));
		return;
	}
	if (off == 0) {
		so_free(&x->saved);
		x->have_saved = 0;
		if (vmstate_save(s->vm, &x->saved, err, sizeof(err)) < 0) {
			so_free(&x->saved);
			client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "saving the state: %s",
				     err);
			return;
		}
		x->have_saved = 1;
		log_info("VM state saved: %zu bytes", x->saved.len);
	} else if (!x->have_saved) {
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE,
			     "no saved state to read at offset %llu: ask for offset 0 first",
			     (unsigned long long)off);
		return;
	}
	if (off > x->saved.len) {
		client_error(&s->client, h->type, h->id, PROTO_E_OUT_OF_RANGE,
			     "offset %llu is past the %zu-byte state", (unsigned long long)off,
			     x->saved.len);
		return;
	}
	n = MIN((uint64_t)r->u.state.max, x->saved.len - off);
	out = malloc(PROTO_STATE_HEADER + n);
	if (!out) {
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	put_u64(out, x->saved.len);
	put_u64(out + 8, off);
	memcpy(out + PROTO_STATE_HEADER, x->saved.data + off, n);
	client_send(&s->client, h->type, PROTO_F_REPLY, h->id, out, PROTO_STATE_HEADER + n);
	free(out);
}

/* The whole blob is here: check it all, apply it, and leave the VM paused at the saved point. */
static void finish_load(struct server *s, const struct proto_header *h)
{
	struct vm *vm = s->vm;
	struct state_xfer *x = &s->xfer;
	enum vm_state st = state_of(vm);
	char err[256], json[96];
	int rc;

	rc = vmstate_load(vm, x->upload, x->upload_total, err, sizeof(err));
	snprintf(json, sizeof(json), "{\"received\":%llu,\"total\":%llu,\"loaded\":true}",
		 (unsigned long long)x->upload_received, (unsigned long long)x->upload_total);
	control_state_drop(s);
	if (rc == -1) {
		log_warn("state refused: %s", err);
		client_error(&s->client, h->type, h->id, PROTO_E_INVALID_ARGUMENT,
			     "state refused, nothing changed: %s", err);
		return;
	}
	if (rc == 0 && st == VM_CREATED && vcpus_start_parked(vm, PARK_TIMEOUT_MS, err, sizeof(err)) < 0)
		rc = -2;
	pthread_mutex_lock(&vm->lock);
	if (rc < 0) {
		char why[320];
		snprintf(why, sizeof(why), "loading the state failed half-way: %s", err);
		vm_set_state_locked(vm, VM_CRASHED, why);
		__atomic_store_n(&vm->quit, 1, __ATOMIC_RELEASE);
		vcpus_kick_all_locked(vm);
		pthread_cond_broadcast(&vm->cond);
	} else {
		vm_set_state_locked(vm, VM_PAUSED, "state loaded");
	}
	pthread_mutex_unlock(&vm->lock);
	/* The restored scrollback is history, not new output: streaming goes on from its end. */
	s->client.console_pos = ring_head(&vm->serial->out);
	if (rc < 0) {
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL,
			     "loading the state failed half-way (the VM is crashed): %s", err);
		return;
	}
	client_send(&s->client, h->type, PROTO_F_REPLY, h->id, json, strlen(json));
}

/* Chunks in order: offset 0 starts (or restarts) an upload of `total` bytes. */
static void op_load(struct server *s, const struct proto_header *h, const struct request *r)
{
	struct state_xfer *x = &s->xfer;
	enum vm_state st = state_of(s->vm);
	uint64_t total = r->u.state.total, off = r->u.state.offset;
	char json[96];

	if (st != VM_CREATED && st != VM_PAUSED) {
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE,
			     "VM is %s: a state is loaded only into a created or paused VM",
			     vm_state_name(st));
		return;
	}
	if (off == 0) {
		free(x->upload);
		x->upload = NULL;
		x->upload_total = x->upload_received = 0;
		if (total < VMSTATE_HEADER_SIZE || total > VMSTATE_MAX_SIZE) {
			client_error(&s->client, h->type, h->id,
				     total > VMSTATE_MAX_SIZE ? PROTO_E_TOO_LARGE : PROTO_E_INVALID_ARGUMENT,
				     "a state of %llu bytes: must be %d..%u bytes",
				     (unsigned long long)total, VMSTATE_HEADER_SIZE, VMSTATE_MAX_SIZE);
			return;
		}
		x->upload = malloc(total);
		if (!x->upload) {
			client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL,
				     "out of memory for a %llu-byte state", (unsigned long long)total);
			return;
		}
		x->upload_total = total;
	} else if (!x->upload || total != x->upload_total || off != x->upload_received) {
		client_error(&s->client, h->type, h->id, PROTO_E_INVALID_ARGUMENT,
			     x->upload ? "expected the chunk at offset %llu of %llu bytes"
				       : "no upload in progress (offset %llu of %llu): start at offset 0",
			     (unsigned long long)(x->upload ? x->upload_received : off),
			     (unsigned long long)(x->upload ? x->upload_total : total));
		return;
	}
	memcpy(x->upload + off, r->u.state.data, r->u.state.len);
	x->upload_received += r->u.state.len;
	if (x->upload_received == x->upload_total) {
		finish_load(s, h);
		return;
	}
	snprintf(json, sizeof(json), "{\"received\":%llu,\"total\":%llu,\"loaded\":false}",
		 (unsigned long long)x->upload_received, (unsigned long long)x->upload_total);
	client_send(&s->client, h->type, PROTO_F_REPLY, h->id, json, strlen(json));
}

/* RAM file offset <-> guest-physical address (slot 0 from 0, slot 1 from 4 GiB). */
static uint64_t gpa_to_offset(const struct guest_memory *m, uint64_t gpa)
{
	uint64_t low = m->slots[0].size;

	if (gpa < low)
		return gpa;
	if (gpa < MEM_HIGH_START)
		return low;
	return MIN(low + (gpa - MEM_HIGH_START), m->size);
}

static uint64_t offset_to_gpa(const struct guest_memory *m, uint64_t off)
{
	return off < m->slots[0].size ? off : MEM_HIGH_START + (off - m->slots[0].size);
}

/* Next data range of the RAM memfd at or after `off`: 0 with [*start, *end), 1 when none. The
 * memfd's holes are pages never touched: SEEK_DATA / SEEK_HOLE find them without faulting any in. */
static int next_data(const struct guest_memory *m, uint64_t off, uint64_t *start, uint64_t *end)
{
	off_t d, e;

	if (off >= m->size)
		return 1;
	d = lseek(m->memfd, (off_t)off, SEEK_DATA);
	if (d < 0)
		return 1;	/* ENXIO: only holes from here */
	e = lseek(m->memfd, d, SEEK_HOLE);
	if (e < 0)
		e = (off_t)m->size;
	*start = (uint64_t)d;
	*end = MIN((uint64_t)e, m->size);
	return 0;
}

static void op_ram_map(struct server *s, const struct proto_header *h, uint64_t from)
{
	const struct guest_memory *m = &s->vm->mem;
	uint64_t off = gpa_to_offset(m, from), a, b, low = m->slots[0].size;
	uint32_t count = 0, more = 0;
	uint8_t *out = malloc(8 + (size_t)PROTO_RAM_MAP_MAX * 16);

	if (!out) {
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	while (next_data(m, off, &a, &b) == 0) {
		/* A range that crosses the end of slot 0 is two ranges of gpa. */
		uint64_t cut = a < low && b > low ? low : b;
		if (count == PROTO_RAM_MAP_MAX) {
			more = 1;
			break;
		}
		put_u64(out + 8 + 16 * count, offset_to_gpa(m, a));
		put_u64(out + 16 + 16 * count, cut - a);
		count++;
		off = cut;
	}
	memcpy(out, &count, 4);
	memcpy(out + 4, &more, 4);
	client_send(&s->client, h->type, PROTO_F_REPLY, h->id, out, 8 + (size_t)count * 16);
	free(out);
}

/* CRC-32 of all RAM in file order, holes counted as the zeros they read as (without touching
 * them, which would allocate them). */
static void op_ram_checksum(struct server *s, const struct proto_header *h)
{
	const struct guest_memory *m = &s->vm->mem;
	uint64_t off = 0, a, b, data = 0;
	uint32_t crc = 0;
	char json[160];

	while (off < m->size) {
		if (next_data(m, off, &a, &b) != 0)
			a = b = m->size;
		crc = crc32_zeros(crc, a - off);
		crc = crc32_update(crc, m->host + a, b - a);
		data += b - a;
		off = b;
	}
	snprintf(json, sizeof(json),
		 "{\"algorithm\":\"crc32\",\"crc32\":\"0x%08x\",\"bytes\":%llu,\"dataBytes\":%llu}", crc,
		 (unsigned long long)m->size, (unsigned long long)data);
	client_send(&s->client, h->type, PROTO_F_REPLY, h->id, json, strlen(json));
}

void control_state_op(struct server *s, const struct proto_header *h, const struct request *r)
{
	switch (h->type) {
	case PROTO_SAVE_STATE: op_save(s, h, r); break;
	case PROTO_LOAD_STATE: op_load(s, h, r); break;
	case PROTO_RAM_MAP: op_ram_map(s, h, r->u.ram_from); break;
	case PROTO_RAM_CHECKSUM: op_ram_checksum(s, h); break;
	}
}
