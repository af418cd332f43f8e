/* Control protocol request handlers: every payload is checked; a bad request gets an error
 * reply and changes nothing. */
#include "control_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "debugport.h"
#include "framebuffer.h"
#include "i8042.h"
#include "json.h"
#include "regs.h"
#include "serial.h"
#include "stats.h"
#include "util.h"
#include "vcpu.h"

#define PAUSE_TIMEOUT_MS        5000
#define STOP_DEFAULT_TIMEOUT_MS 3000
#define STOP_MAX_TIMEOUT_MS     600000

static enum vm_state get_state(struct vm *vm)
{
	enum vm_state st;

	pthread_mutex_lock(&vm->lock);
	st = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return st;
}

static void reply(struct server *s, const struct proto_header *h, const void *data, size_t len)
{
	client_send(&s->client, h->type, PROTO_F_REPLY, h->id, data, len);
}

static void reply_sb(struct server *s, const struct proto_header *h, struct sbuf *sb)
{
	if (sb->oom)
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "out of memory");
	else
		reply(s, h, sb->data, sb->len);
	sb_free(sb);
}

static void status_json(struct server *s, struct sbuf *sb)
{
	struct vm *vm = s->vm;

	pthread_mutex_lock(&vm->lock);
	sb_printf(sb, "{\"state\":\"%s\",\"reason\":", vm_state_name(vm->state));
	sb_json_str(sb, vm->reason);
	pthread_mutex_unlock(&vm->lock);
	sb_printf(sb, ",\"vcpus\":%u,\"memory\":%llu,\"pid\":%d,\"mode\":\"%s\",\"uptimeMs\":%llu,"
		  "\"consoleHead\":%llu,\"protocol\":%d}",
		  vm->nr_vcpus, (unsigned long long)vm->mem.size, (int)getpid(),
		  vm->cfg.mode == BOOT_LONG ? "long" : "protected",
		  (unsigned long long)((now_ns() - s->started_ns) / 1000000),
		  (unsigned long long)ring_head(&vm->serial->out), PROTO_VERSION);
}

static void op_hello(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	uint64_t version;
	struct sbuf sb;

	if (json_get_u64((const char *)p, h->length, "version", &version) < 0) {
		client_error(&s->client, h->type, h->id, PROTO_E_BAD_MESSAGE,
			     "HELLO needs a JSON payload with \"version\"");
		return;
	}
	if (version != PROTO_VERSION) {
		client_error(&s->client, h->type, h->id, PROTO_E_VERSION,
			     "protocol version %llu not supported (helper speaks %d)",
			     (unsigned long long)version, PROTO_VERSION);
		return;
	}
	s->client.hello = 1;
	sb_init(&sb);
	status_json(s, &sb);
	reply_sb(s, h, &sb);
}

static void op_start(struct server *s, const struct proto_header *h)
{
	struct vm *vm = s->vm;
	char err[256];

	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_CREATED) {
		pthread_mutex_unlock(&vm->lock);
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE, "VM is %s, not created",
			     vm_state_name(get_state(vm)));
		return;
	}
	vm_set_state_locked(vm, VM_RUNNING, "started");
	pthread_mutex_unlock(&vm->lock);
	if (vcpus_start(vm, err, sizeof(err)) < 0) {
		vm_guest_stopped(vm, VM_CRASHED, err);
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "%s", err);
		return;
	}
	reply(s, h, NULL, 0);
}

static void op_pause(struct server *s, const struct proto_header *h)
{
	struct vm *vm = s->vm;

	if (get_state(vm) != VM_RUNNING) {
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE, "VM is %s, not running",
			     vm_state_name(get_state(vm)));
		return;
	}
	if (vcpus_pause(vm, PAUSE_TIMEOUT_MS) < 0) {
		vcpus_resume(vm);
		client_error(&s->client, h->type, h->id, PROTO_E_TIMEOUT,
			     "vCPUs did not leave KVM_RUN within %d ms", PAUSE_TIMEOUT_MS);
		return;
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_RUNNING) {
		vm_set_state_locked(vm, VM_PAUSED, "paused");
		pthread_mutex_unlock(&vm->lock);
		reply(s, h, NULL, 0);
		return;
	}
	pthread_mutex_unlock(&vm->lock);
	client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE, "VM became %s while pausing",
		     vm_state_name(get_state(vm)));
}

static void op_resume(struct server *s, const struct proto_header *h)
{
	struct vm *vm = s->vm;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_PAUSED) {
		pthread_mutex_unlock(&vm->lock);
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE, "VM is %s, not paused",
			     vm_state_name(get_state(vm)));
		return;
	}
	vm_set_state_locked(vm, VM_RUNNING, "resumed");
	pthread_mutex_unlock(&vm->lock);
	vcpus_resume(vm);
	reply(s, h, NULL, 0);
}

void control_stop_now(struct server *s, int forced)
{
	struct vm *vm = s->vm;
	enum vm_state st;

	pthread_mutex_lock(&vm->lock);
	st = vm->state;
	if (st == VM_RUNNING || st == VM_PAUSED)
		vm_set_state_locked(vm, VM_STOPPED, "stopped by force");
	__atomic_store_n(&vm->quit, 1, __ATOMIC_RELEASE);
	vcpus_kick_all_locked(vm);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vcpus_join(vm);
	if (st == VM_CRASHED)
		s->exit_status = EXIT_CRASHED;
	else if (st == VM_RUNNING || st == VM_PAUSED || forced)
		s->exit_status = EXIT_FORCED;
	else
		s->exit_status = EXIT_CLEAN;
	if (s->stop.active && s->stop.id) {
		char json[64];
		snprintf(json, sizeof(json), "{\"forced\":%s,\"exitStatus\":%d}",
			 s->exit_status == EXIT_FORCED ? "true" : "false", s->exit_status);
		client_send(&s->client, PROTO_STOP, PROTO_F_REPLY, s->stop.id, json, strlen(json));
	}
	s->stop.active = 0;
}

void control_stop_progress(struct server *s)
{
	enum vm_state st = get_state(s->vm);

	if (st != VM_RUNNING)		/* the guest acknowledged (or stopped some other way) */
		control_stop_now(s, 0);
	else if (now_ns() >= s->stop.deadline_ns) {
		log_warn("guest did not acknowledge power-off in time; forcing");
		control_stop_now(s, 1);
	}
}

static void op_stop(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	uint64_t timeout = STOP_DEFAULT_TIMEOUT_MS;

	if (s->stop.active) {
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE, "a stop is in progress");
		return;
	}
	if (h->length && json_get_u64((const char *)p, h->length, "timeoutMs", &timeout) < 0 &&
	    memmem(p, h->length, "timeoutMs", 9)) {
		client_error(&s->client, h->type, h->id, PROTO_E_INVALID_ARGUMENT, "bad timeoutMs");
		return;
	}
	if (timeout > STOP_MAX_TIMEOUT_MS) {
		client_error(&s->client, h->type, h->id, PROTO_E_INVALID_ARGUMENT,
			     "timeoutMs %llu above %d", (unsigned long long)timeout, STOP_MAX_TIMEOUT_MS);
		return;
	}
	s->stop.active = 1;
	s->stop.id = h->id;
	s->stop.deadline_ns = now_ns() + timeout * 1000000ull;
	if (get_state(s->vm) == VM_RUNNING && timeout > 0) {
		log_info("stop: asking the guest to power off (%llu ms)", (unsigned long long)timeout);
		debugport_request_poweroff(s->vm->debug);
		return;		/* answered by control_stop_progress */
	}
	control_stop_now(s, get_state(s->vm) == VM_RUNNING);
}

/* The vCPU a GET/SET_REGS request names, checked; NULL after replying an error. */
static struct vcpu *regs_vcpu(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	uint64_t id;
	enum vm_state st = get_state(s->vm);

	if (json_get_u64((const char *)p, h->length, "vcpu", &id) < 0) {
		client_error(&s->client, h->type, h->id, PROTO_E_BAD_MESSAGE,
			     "payload must be JSON with \"vcpu\"");
		return NULL;
	}
	if (id >= s->vm->nr_vcpus) {
		client_error(&s->client, h->type, h->id, PROTO_E_OUT_OF_RANGE,
			     "vcpu %llu does not exist (%u vCPUs)", (unsigned long long)id,
			     s->vm->nr_vcpus);
		return NULL;
	}
	if (st == VM_RUNNING) {
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE,
			     "registers are only accessible while the VM is not running (pause it first)");
		return NULL;
	}
	return &s->vm->vcpus[id];
}

static void op_regs(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	struct vcpu *v = regs_vcpu(s, h, p);
	char err[256];
	struct sbuf sb;

	if (!v)
		return;
	sb_init(&sb);
	if (h->type == PROTO_SET_REGS &&
	    regs_set_json(v->fd, (const char *)p, h->length, err, sizeof(err)) < 0) {
		client_error(&s->client, h->type, h->id, PROTO_E_INVALID_ARGUMENT, "%s", err);
		return;
	}
	if (regs_get_json(v->fd, v->id, &sb, err, sizeof(err)) < 0) {
		sb_free(&sb);
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "%s", err);
		return;
	}
	reply_sb(s, h, &sb);
}

struct mem_req {
	uint64_t gpa;
	uint32_t len;
	uint32_t flags;
} __attribute__((packed));

static void op_mem(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	struct mem_req r;
	void *host;

	if (h->length < sizeof(r)) {
		client_error(&s->client, h->type, h->id, PROTO_E_BAD_MESSAGE,
			     "memory request needs a 16-byte header");
		return;
	}
	memcpy(&r, p, sizeof(r));
	if (r.flags) {
		client_error(&s->client, h->type, h->id, PROTO_E_INVALID_ARGUMENT, "flags must be 0");
		return;
	}
	if (r.len > PROTO_MAX_MEM_IO) {
		client_error(&s->client, h->type, h->id, PROTO_E_TOO_LARGE,
			     "%u bytes above the per-request limit of %u", r.len, PROTO_MAX_MEM_IO);
		return;
	}
	if (h->type == PROTO_WRITE_MEM && h->length - sizeof(r) != r.len) {
		client_error(&s->client, h->type, h->id, PROTO_E_BAD_MESSAGE,
			     "length %u does not match the %zu data bytes", r.len, h->length - sizeof(r));
		return;
	}
	host = memory_gpa_to_host(&s->vm->mem, r.gpa, r.len);
	if (!host) {
		client_error(&s->client, h->type, h->id, PROTO_E_OUT_OF_RANGE,
			     "[0x%llx, +0x%x) is not inside guest RAM", (unsigned long long)r.gpa, r.len);
		return;
	}
	if (h->type == PROTO_READ_MEM) {
		reply(s, h, host, r.len);
	} else {
		memcpy(host, p + sizeof(r), r.len);
		reply(s, h, NULL, 0);
	}
}

static void op_input(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	char json[48];
	size_t n = h->type == PROTO_KEYBOARD ? i8042_input(s->vm->kbd, p, h->length)
					     : serial_input(s->vm->serial, p, h->length);

	snprintf(json, sizeof(json), "{\"accepted\":%zu}", n);
	reply(s, h, json, strlen(json));
}

static void op_console_read(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	uint32_t max = 64 << 10;
	uint64_t pos, lost;
	uint8_t *buf;
	size_t n;

	if (h->length != 0 && h->length != 4) {
		client_error(&s->client, h->type, h->id, PROTO_E_BAD_MESSAGE,
			     "payload is empty or a u32 byte count");
		return;
	}
	if (h->length == 4)
		memcpy(&max, p, 4);
	if (max > SERIAL_RING_SIZE) {
		client_error(&s->client, h->type, h->id, PROTO_E_TOO_LARGE, "at most %u bytes",
			     SERIAL_RING_SIZE);
		return;
	}
	buf = malloc(MAX(max, 1u));
	if (!buf) {
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	pos = ring_head(&s->vm->serial->out);
	pos = pos > max ? pos - max : 0;
	n = ring_read(&s->vm->serial->out, &pos, buf, max, &lost);
	reply(s, h, buf, n);
	free(buf);
}

static void op_guest_command(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	uint32_t word;

	if (h->length != 4) {
		client_error(&s->client, h->type, h->id, PROTO_E_BAD_MESSAGE, "payload is one u32");
		return;
	}
	memcpy(&word, p, 4);
	if (!word || debugport_command(s->vm->debug, word) < 0) {
		client_error(&s->client, h->type, h->id, word ? PROTO_E_TOO_LARGE : PROTO_E_INVALID_ARGUMENT,
			     word ? "command mailbox full" : "command word 0 means \"empty\"");
		return;
	}
	reply(s, h, NULL, 0);
}

static void op_display_info(struct server *s, const struct proto_header *h)
{
	struct framebuffer *fb = s->vm->fb;
	struct sbuf sb;

	sb_init(&sb);
	sb_printf(&sb, "{\"width\":%u,\"height\":%u,\"stride\":%u,\"format\":\"bgrx\",\"path\":",
		  fb->width, fb->height, fb->stride);
	sb_json_str(&sb, fb->path);
	sb_printf(&sb, ",\"gpa\":%llu,\"pages\":%u,\"size\":%llu}", (unsigned long long)fb->gpa,
		  fb->pages, (unsigned long long)fb->size);
	reply_sb(s, h, &sb);
}

static void op_dirty(struct server *s, const struct proto_header *h)
{
	struct framebuffer *fb = s->vm->fb;
	size_t words = (fb->pages + 63) / 64;
	const uint64_t *bits;
	char err[256];
	uint8_t *out;

	bits = framebuffer_dirty(fb, err, sizeof(err));
	if (!bits) {
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "%s", err);
		return;
	}
	out = malloc(4 + words * 8);
	if (!out) {
		client_error(&s->client, h->type, h->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	memcpy(out, &fb->pages, 4);		/* x86: already little-endian */
	memcpy(out + 4, bits, words * 8);
	reply(s, h, out, 4 + words * 8);
	free(out);
}

static void op_pointer(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	uint64_t x, y, buttons;

	if (json_get_u64((const char *)p, h->length, "x", &x) < 0 ||
	    json_get_u64((const char *)p, h->length, "y", &y) < 0 ||
	    json_get_u64((const char *)p, h->length, "buttons", &buttons) < 0) {
		client_error(&s->client, h->type, h->id, PROTO_E_BAD_MESSAGE,
			     "payload must be JSON {\"x\":N,\"y\":N,\"buttons\":N}");
		return;
	}
	if (x > 0xffffffffull || y > 0xffffffffull || buttons > 0xffffffffull) {
		client_error(&s->client, h->type, h->id, PROTO_E_INVALID_ARGUMENT,
			     "x, y and buttons are 32-bit values");
		return;
	}
	framebuffer_pointer(s->vm->fb, (uint32_t)x, (uint32_t)y, (uint32_t)buttons);
	reply(s, h, "{}", 2);
}

void control_handle(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	struct sbuf sb;

	if (h->flags & (PROTO_F_REPLY | PROTO_F_EVENT)) {
		client_error(&s->client, h->type, h->id, PROTO_E_BAD_MESSAGE, "clients send requests only");
		return;
	}
	if (h->type == PROTO_HELLO) {
		op_hello(s, h, p);
		return;
	}
	if (!s->client.hello) {
		client_error(&s->client, h->type, h->id, PROTO_E_NO_HELLO, "send HELLO first");
		return;
	}
	switch (h->type) {
	case PROTO_STATUS:
		sb_init(&sb);
		status_json(s, &sb);
		reply_sb(s, h, &sb);
		break;
	case PROTO_START: op_start(s, h); break;
	case PROTO_PAUSE: op_pause(s, h); break;
	case PROTO_RESUME: op_resume(s, h); break;
	case PROTO_STOP: op_stop(s, h, p); break;
	case PROTO_GET_REGS:
	case PROTO_SET_REGS: op_regs(s, h, p); break;
	case PROTO_READ_MEM:
	case PROTO_WRITE_MEM: op_mem(s, h, p); break;
	case PROTO_STATS:
		sb_init(&sb);
		stats_json(s->vm, &sb);
		reply_sb(s, h, &sb);
		break;
	case PROTO_CONSOLE_WRITE:
	case PROTO_KEYBOARD: op_input(s, h, p); break;
	case PROTO_CONSOLE_READ: op_console_read(s, h, p); break;
	case PROTO_GUEST_COMMAND: op_guest_command(s, h, p); break;
	case PROTO_DISPLAY_INFO: op_display_info(s, h); break;
	case PROTO_DIRTY: op_dirty(s, h); break;
	case PROTO_POINTER: op_pointer(s, h, p); break;
	default:
		client_error(&s->client, h->type, h->id, PROTO_E_UNKNOWN_TYPE, "unknown request type %u",
			     h->type);
	}
}
