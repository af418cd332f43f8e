/* Control protocol request handlers: every payload is checked first (request.c); a bad
 * request gets an error reply and changes nothing. */
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
#include "request.h"
#include "sandbox.h"
#include "serial.h"
#include "stats.h"
#include "util.h"
#include "vcpu.h"

#define PAUSE_TIMEOUT_MS        5000

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
		  "\"consoleHead\":%llu,\"protocol\":%d",
		  vm->nr_vcpus, (unsigned long long)vm->mem.size, (int)getpid(),
		  boot_mode_name(vm->cfg.mode),
		  (unsigned long long)((now_ns() - s->started_ns) / 1000000),
		  (unsigned long long)ring_head(&vm->serial->out), PROTO_VERSION);
	sandbox_status_json(sb);
	sb_printf(sb, "}");
}

static void op_hello(struct server *s, const struct proto_header *h)
{
	struct sbuf sb;

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
	control_state_drop(s);
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
	control_state_drop(s);
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

static void op_stop(struct server *s, const struct proto_header *h, uint64_t timeout)
{
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

static void op_regs(struct server *s, const struct proto_header *h, const uint8_t *p,
		    uint64_t vcpu)
{
	struct vcpu *v = &s->vm->vcpus[vcpu];
	char err[256];
	struct sbuf sb;

	if (get_state(s->vm) == VM_RUNNING) {
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE,
			     "registers are only accessible while the VM is not running (pause it first)");
		return;
	}
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

static void op_mem(struct server *s, const struct proto_header *h, uint64_t gpa, uint32_t len,
		   const uint8_t *data)
{
	void *host = memory_gpa_to_host(&s->vm->mem, gpa, len);

	if (!host) {
		client_error(&s->client, h->type, h->id, PROTO_E_OUT_OF_RANGE,
			     "[0x%llx, +0x%x) is not inside guest RAM", (unsigned long long)gpa, len);
		return;
	}
	if (h->type == PROTO_READ_MEM) {
		reply(s, h, host, len);
	} else {
		memcpy(host, data, len);
		reply(s, h, NULL, 0);
	}
}

static void op_input(struct server *s, const struct proto_header *h, const uint8_t *bytes,
		     size_t len)
{
	char json[48];
	size_t n;

	if (h->type != PROTO_KEYBOARD)
		sandbox_test_hook(bytes, len);
	n = h->type == PROTO_KEYBOARD ? i8042_input(s->vm->kbd, bytes, len)
				      : serial_input(s->vm->serial, bytes, len);

	snprintf(json, sizeof(json), "{\"accepted\":%zu}", n);
	reply(s, h, json, strlen(json));
}

static void op_console_read(struct server *s, const struct proto_header *h, uint32_t max)
{
	uint64_t pos, lost;
	uint8_t *buf;
	size_t n;

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

static void op_guest_command(struct server *s, const struct proto_header *h, uint32_t word)
{
	if (debugport_command(s->vm->debug, word) < 0) {
		client_error(&s->client, h->type, h->id, PROTO_E_TOO_LARGE, "command mailbox full");
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

static void op_mouse(struct server *s, const struct proto_header *h, const struct request *r)
{
	char json[48];
	int reporting;
	unsigned n = i8042_mouse_motion(s->vm->kbd, r->u.mouse.dx, r->u.mouse.dy, r->u.mouse.wheel,
					r->u.mouse.buttons, &reporting);

	snprintf(json, sizeof(json), "{\"packets\":%u,\"reporting\":%s}", n,
		 reporting ? "true" : "false");
	reply(s, h, json, strlen(json));
}

void control_handle(struct server *s, const struct proto_header *h, const uint8_t *p)
{
	struct request_limits lim = { .nr_vcpus = s->vm->nr_vcpus };
	struct request_error e;
	struct request r;
	struct sbuf sb;

	if (request_check_flags(h, &e) < 0) {
		client_error(&s->client, h->type, h->id, e.code, "%s", e.message);
		return;
	}
	if (h->type != PROTO_HELLO && !s->client.hello) {
		client_error(&s->client, h->type, h->id, PROTO_E_NO_HELLO, "send HELLO first");
		return;
	}
	if (h->type == PROTO_HELLO) {	/* again on the controlling connection: same checks */
		if (auth_check_hello(s->secret, h, p, &e) < 0)
			client_error(&s->client, h->type, h->id, e.code, "%s", e.message);
		else
			op_hello(s, h);
		return;
	}
	if (h->type == PROTO_STOP && s->stop.active) {	/* refused before its payload is read */
		client_error(&s->client, h->type, h->id, PROTO_E_WRONG_STATE, "a stop is in progress");
		return;
	}
	if (request_parse(h, p, &lim, &r, &e) < 0) {
		client_error(&s->client, h->type, h->id, e.code, "%s", e.message);
		return;
	}
	switch (h->type) {		/* request_parse refused every other type */
	case PROTO_HELLO: op_hello(s, h); break;
	case PROTO_STATUS:
		sb_init(&sb);
		status_json(s, &sb);
		reply_sb(s, h, &sb);
		break;
	case PROTO_START: op_start(s, h); break;
	case PROTO_PAUSE: op_pause(s, h); break;
	case PROTO_RESUME: op_resume(s, h); break;
	case PROTO_STOP: op_stop(s, h, r.u.timeout_ms); break;
	case PROTO_GET_REGS:
	case PROTO_SET_REGS: op_regs(s, h, p, r.u.vcpu); break;
	case PROTO_READ_MEM:
	case PROTO_WRITE_MEM: op_mem(s, h, r.u.mem.gpa, r.u.mem.len, r.u.mem.data); break;
	case PROTO_STATS:
		sb_init(&sb);
		stats_json(s->vm, &sb);
		reply_sb(s, h, &sb);
		break;
	case PROTO_CONSOLE_WRITE:
	case PROTO_KEYBOARD: op_input(s, h, r.u.input.bytes, r.u.input.len); break;
	case PROTO_CONSOLE_READ: op_console_read(s, h, r.u.console_max); break;
	case PROTO_GUEST_COMMAND: op_guest_command(s, h, r.u.command); break;
	case PROTO_DISPLAY_INFO: op_display_info(s, h); break;
	case PROTO_DIRTY: op_dirty(s, h); break;
	case PROTO_POINTER:
		framebuffer_pointer(s->vm->fb, r.u.pointer.x, r.u.pointer.y, r.u.pointer.buttons);
		reply(s, h, "{}", 2);
		break;
	case PROTO_MOUSE: op_mouse(s, h, &r); break;
	case PROTO_SAVE_STATE:
	case PROTO_LOAD_STATE:
	case PROTO_RAM_MAP:
	case PROTO_RAM_CHECKSUM: control_state_op(s, h, &r); break;
	case PROTO_RAM_DIRTY_LOG:
	case PROTO_RAM_DIRTY:
	case PROTO_READ_PAGES:
	case PROTO_WRITE_PAGES: control_migrate_op(s, h, &r); break;
	}
}
