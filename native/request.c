/* Request payload checks, one function per request type. */
#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "ps2mouse.h"
#include "serial.h"

static int fail(struct request_error *e, unsigned code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct request_error *e, unsigned code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -1;
}

struct mem_header {
	uint64_t gpa;
	uint32_t len;
	uint32_t flags;
} __attribute__((packed));

static int parse_hello(const struct proto_header *h, const uint8_t *p, struct request *r,
		       struct request_error *e)
{
	uint64_t version;

	if (h->length > PROTO_HELLO_MAX)
		return fail(e, PROTO_E_TOO_LARGE, "HELLO payload of %u bytes exceeds %d", h->length,
			    PROTO_HELLO_MAX);
	if (json_get_u64((const char *)p, h->length, "version", &version) < 0)
		return fail(e, PROTO_E_BAD_MESSAGE, "HELLO needs a JSON payload with \"version\"");
	if (version != PROTO_VERSION)
		return fail(e, PROTO_E_VERSION, "protocol version %llu not supported (helper speaks %d)",
			    (unsigned long long)version, PROTO_VERSION);
	if (json_get_str((const char *)p, h->length, "secret", r->u.hello.secret,
			 sizeof(r->u.hello.secret)) < 0 ||
	    strlen(r->u.hello.secret) != PROTO_SECRET_HEX)
		return fail(e, PROTO_E_AUTH, "HELLO needs \"secret\": the VM's %d hex digit secret",
			    PROTO_SECRET_HEX);
	return 0;
}

/* An optional {"timeoutMs":N}: a payload that does not mention it means the default. */
static int parse_stop(const struct proto_header *h, const uint8_t *p, struct request *r,
		      struct request_error *e)
{
	r->u.timeout_ms = STOP_DEFAULT_TIMEOUT_MS;
	if (h->length && json_get_u64((const char *)p, h->length, "timeoutMs", &r->u.timeout_ms) < 0 &&
	    memmem(p, h->length, "timeoutMs", 9))
		return fail(e, PROTO_E_INVALID_ARGUMENT, "bad timeoutMs");
	if (r->u.timeout_ms > STOP_MAX_TIMEOUT_MS)
		return fail(e, PROTO_E_INVALID_ARGUMENT, "timeoutMs %llu above %d",
			    (unsigned long long)r->u.timeout_ms, STOP_MAX_TIMEOUT_MS);
	return 0;
}

static int parse_regs(const struct proto_header *h, const uint8_t *p,
		      const struct request_limits *lim, struct request *r, struct request_error *e)
{
	if (json_get_u64((const char *)p, h->length, "vcpu", &r->u.vcpu) < 0)
		return fail(e, PROTO_E_BAD_MESSAGE, "payload must be JSON with \"vcpu\"");
	if (r->u.vcpu >= lim->nr_vcpus)
		return fail(e, PROTO_E_OUT_OF_RANGE, "vcpu %llu does not exist (%u vCPUs)",
			    (unsigned long long)r->u.vcpu, lim->nr_vcpus);
	return 0;
}

static int parse_mem(const struct proto_header *h, const uint8_t *p, struct request *r,
		     struct request_error *e)
{
	struct mem_header m;

	if (h->length < sizeof(m))
		return fail(e, PROTO_E_BAD_MESSAGE, "memory request needs a 16-byte header");
	memcpy(&m, p, sizeof(m));
	if (m.flags)
		return fail(e, PROTO_E_INVALID_ARGUMENT, "flags must be 0");
	if (m.len > PROTO_MAX_MEM_IO)
		return fail(e, PROTO_E_TOO_LARGE, "%u bytes above the per-request limit of %u", m.len,
			    PROTO_MAX_MEM_IO);
	if (h->type == PROTO_WRITE_MEM && h->length - sizeof(m) != m.len)
		return fail(e, PROTO_E_BAD_MESSAGE, "length %u does not match the %zu data bytes", m.len,
			    h->length - sizeof(m));
	r->u.mem.gpa = m.gpa;
	r->u.mem.len = m.len;
	r->u.mem.data = h->type == PROTO_WRITE_MEM ? p + sizeof(m) : NULL;
	return 0;
}

static int parse_console_read(const struct proto_header *h, const uint8_t *p, struct request *r,
			      struct request_error *e)
{
	r->u.console_max = CONSOLE_READ_DEFAULT;
	if (h->length != 0 && h->length != 4)
		return fail(e, PROTO_E_BAD_MESSAGE, "payload is empty or a u32 byte count");
	if (h->length == 4)
		memcpy(&r->u.console_max, p, 4);
	if (r->u.console_max > SERIAL_RING_SIZE)
		return fail(e, PROTO_E_TOO_LARGE, "at most %u bytes", SERIAL_RING_SIZE);
	return 0;
}

static int parse_guest_command(const struct proto_header *h, const uint8_t *p, struct request *r,
			       struct request_error *e)
{
	if (h->length != 4)
		return fail(e, PROTO_E_BAD_MESSAGE, "payload is one u32");
	memcpy(&r->u.command, p, 4);
	if (!r->u.command)
		return fail(e, PROTO_E_INVALID_ARGUMENT, "command word 0 means \"empty\"");
	return 0;
}

static int parse_pointer(const struct proto_header *h, const uint8_t *p, struct request *r,
			 struct request_error *e)
{
	uint64_t x, y, buttons;

	if (json_get_u64((const char *)p, h->length, "x", &x) < 0 ||
	    json_get_u64((const char *)p, h->length, "y", &y) < 0 ||
	    json_get_u64((const char *)p, h->length, "buttons", &buttons) < 0)
		return fail(e, PROTO_E_BAD_MESSAGE, "payload must be JSON {\"x\":N,\"y\":N,\"buttons\":N}");
	if (x > 0xffffffffull || y > 0xffffffffull || buttons > 0xffffffffull)
		return fail(e, PROTO_E_INVALID_ARGUMENT, "x, y and buttons are 32-bit values");
	r->u.pointer.x = (uint32_t)x;
	r->u.pointer.y = (uint32_t)y;
	r->u.pointer.buttons = (uint32_t)buttons;
	return 0;
}

/* 16 bytes: i32 dx, i32 dy (screen coordinates, down positive), i32 wheel, u32 buttons. */
static int parse_mouse(const struct proto_header *h, const uint8_t *p, struct request *r,
		       struct request_error *e)
{
	int32_t v[3];
	uint32_t buttons;

	if (h->length != 16)
		return fail(e, PROTO_E_BAD_MESSAGE, "payload is i32 dx, i32 dy, i32 wheel, u32 buttons "
			    "(16 bytes), not %u bytes", h->length);
	memcpy(v, p, sizeof(v));
	memcpy(&buttons, p + 12, 4);
	for (int i = 0; i < 2; i++)
		if (v[i] < -PS2MOUSE_MAX_DELTA || v[i] > PS2MOUSE_MAX_DELTA)
			return fail(e, PROTO_E_INVALID_ARGUMENT, "%s %d is outside -%d..%d", i ? "dy" : "dx",
				    v[i], PS2MOUSE_MAX_DELTA, PS2MOUSE_MAX_DELTA);
	if (v[2] < -PS2MOUSE_MAX_WHEEL || v[2] > PS2MOUSE_MAX_WHEEL)
		return fail(e, PROTO_E_INVALID_ARGUMENT, "wheel %d is outside -%d..%d", v[2],
			    PS2MOUSE_MAX_WHEEL, PS2MOUSE_MAX_WHEEL);
	if (buttons > PS2MOUSE_BUTTONS)
		return fail(e, PROTO_E_INVALID_ARGUMENT,
			    "buttons 0x%x has bits above 2 (bit 0 left, 1 right, 2 middle)", buttons);
	r->u.mouse.dx = v[0];
	r->u.mouse.dy = v[1];
	r->u.mouse.wheel = v[2];
	r->u.mouse.buttons = buttons;
	return 0;
}

/* SAVE_STATE: u64 offset, u32 max. LOAD_STATE: u64 total, u64 offset, then the bytes. The
 * offsets against the blob are checked by the handler (it knows the blob). */
static int parse_state(const struct proto_header *h, const uint8_t *p, struct request *r,
		       struct request_error *e)
{
	if (h->type == PROTO_SAVE_STATE) {
		if (h->length != 12)
			return fail(e, PROTO_E_BAD_MESSAGE, "SAVE_STATE payload is u64 offset, u32 max "
				    "(12 bytes), not %u bytes", h->length);
		memcpy(&r->u.state.offset, p, 8);
		memcpy(&r->u.state.max, p + 8, 4);
		if (!r->u.state.max || r->u.state.max > PROTO_STATE_CHUNK)
			return fail(e, PROTO_E_INVALID_ARGUMENT, "max %u: must be 1..%u", r->u.state.max,
				    PROTO_STATE_CHUNK);
		return 0;
	}
	if (h->length < PROTO_STATE_HEADER)
		return fail(e, PROTO_E_BAD_MESSAGE, "LOAD_STATE payload is u64 total, u64 offset, then "
			    "the bytes (at least %d bytes), not %u bytes", PROTO_STATE_HEADER, h->length);
	memcpy(&r->u.state.total, p, 8);
	memcpy(&r->u.state.offset, p + 8, 8);
	r->u.state.data = p + PROTO_STATE_HEADER;
	r->u.state.len = h->length - PROTO_STATE_HEADER;
	if (r->u.state.len > PROTO_STATE_CHUNK)
		return fail(e, PROTO_E_TOO_LARGE, "%u state bytes above the per-message limit of %u",
			    r->u.state.len, PROTO_STATE_CHUNK);
	if (r->u.state.offset > r->u.state.total ||
	    r->u.state.len > r->u.state.total - r->u.state.offset)
		return fail(e, PROTO_E_OUT_OF_RANGE, "bytes [%llu, +%u) are outside the %llu-byte state",
			    (unsigned long long)r->u.state.offset, r->u.state.len,
			    (unsigned long long)r->u.state.total);
	return 0;
}

static int parse_ram_map(const struct proto_header *h, const uint8_t *p, struct request *r,
			 struct request_error *e)
{
	if (h->length != 0 && h->length != 8)
		return fail(e, PROTO_E_BAD_MESSAGE, "RAM_MAP payload is empty or a u64 gpa");
	if (h->length == 8)
		memcpy(&r->u.ram_from, p, 8);
	return 0;
}

static int parse_dirty_log(const struct proto_header *h, const uint8_t *p, struct request *r,
			   struct request_error *e)
{
	if (h->length != 4)
		return fail(e, PROTO_E_BAD_MESSAGE, "RAM_DIRTY_LOG payload is one u32 (1 on, 0 off), "
			    "not %u bytes", h->length);
	memcpy(&r->u.dirty_log_on, p, 4);
	if (r->u.dirty_log_on > 1)
		return fail(e, PROTO_E_INVALID_ARGUMENT, "RAM_DIRTY_LOG %u: 1 turns logging on, 0 off",
			    r->u.dirty_log_on);
	return 0;
}

_Static_assert(PROTO_PAGES_MAX * PROTO_PAGE_SIZE == PROTO_MAX_MEM_IO, "READ_PAGES moves 1 MiB at most");
_Static_assert(4 + PROTO_PAGES_MAX * PROTO_PAGE_RUN_SIZE + PROTO_MAX_MEM_IO <= PROTO_MAX_PAYLOAD,
	       "the largest WRITE_PAGES fits one message");

void request_page_run(const struct request *r, uint32_t i, uint64_t *gpa, uint32_t *pages)
{
	memcpy(gpa, r->u.pages.runs + (size_t)i * PROTO_PAGE_RUN_SIZE, 8);
	memcpy(pages, r->u.pages.runs + (size_t)i * PROTO_PAGE_RUN_SIZE + 8, 4);
}

/* u32 n, then n runs of (u64 gpa, u32 pages); WRITE_PAGES then exactly the runs' bytes. Each run is
 * checked on its own (aligned, not empty, no wrap past 2^64); whether it lies in RAM is the
 * handler's (it knows the slots). */
static int parse_pages(const struct proto_header *h, const uint8_t *p, struct request *r,
		       struct request_error *e)
{
	const char *name = h->type == PROTO_READ_PAGES ? "READ_PAGES" : "WRITE_PAGES";
	uint32_t n, total = 0;
	size_t head;

	if (h->length < 4)
		return fail(e, PROTO_E_BAD_MESSAGE, "%s payload is u32 n, then n runs of u64 gpa, u32 "
			    "pages", name);
	memcpy(&n, p, 4);
	if (n == 0)
		return fail(e, PROTO_E_INVALID_ARGUMENT, "%s needs at least one run", name);
	if (n > PROTO_PAGES_MAX)
		return fail(e, PROTO_E_TOO_LARGE, "%u runs: at most %d pages per request", n,
			    PROTO_PAGES_MAX);
	head = 4 + (size_t)n * PROTO_PAGE_RUN_SIZE;
	if (h->length < head || (h->type == PROTO_READ_PAGES && h->length != head))
		return fail(e, PROTO_E_BAD_MESSAGE, "%s payload of %u bytes for %u runs (%zu bytes of "
			    "header)", name, h->length, n, head);
	r->u.pages.count = n;
	r->u.pages.runs = p + 4;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t gpa;
		uint32_t pages;

		request_page_run(r, i, &gpa, &pages);
		if (gpa % PROTO_PAGE_SIZE)
			return fail(e, PROTO_E_INVALID_ARGUMENT, "run %u: gpa 0x%llx is not page-aligned", i,
				    (unsigned long long)gpa);
		if (pages == 0)
			return fail(e, PROTO_E_INVALID_ARGUMENT, "run %u at 0x%llx has no pages", i,
				    (unsigned long long)gpa);
		if (pages > PROTO_PAGES_MAX - total)
			return fail(e, PROTO_E_TOO_LARGE, "more than %d pages in one request (run %u)",
				    PROTO_PAGES_MAX, i);
		if ((uint64_t)pages * PROTO_PAGE_SIZE > UINT64_MAX - gpa)
			return fail(e, PROTO_E_OUT_OF_RANGE, "run %u at 0x%llx runs past the end of the "
				    "address space", i, (unsigned long long)gpa);
		total += pages;
	}
	r->u.pages.pages = total;
	if (h->type == PROTO_WRITE_PAGES) {
		if (h->length - head != (size_t)total * PROTO_PAGE_SIZE)
			return fail(e, PROTO_E_BAD_MESSAGE, "%zu data bytes for %u pages (%u bytes)",
				    h->length - head, total, total * PROTO_PAGE_SIZE);
		r->u.pages.data = p + head;
	}
	return 0;
}

int request_check_flags(const struct proto_header *h, struct request_error *e)
{
	if (h->flags & (PROTO_F_REPLY | PROTO_F_EVENT))
		return fail(e, PROTO_E_BAD_MESSAGE, "clients send requests only");
	return 0;
}

int request_parse(const struct proto_header *h, const uint8_t *p, const struct request_limits *lim,
		  struct request *r, struct request_error *e)
{
	memset(r, 0, sizeof(*r));
	r->type = h->type;
	switch (h->type) {
	case PROTO_HELLO:
		return parse_hello(h, p, r, e);
	case PROTO_STATUS:
	case PROTO_START:
	case PROTO_PAUSE:
	case PROTO_RESUME:
	case PROTO_STATS:
	case PROTO_DISPLAY_INFO:
	case PROTO_DIRTY:
	case PROTO_RAM_CHECKSUM:
	case PROTO_RAM_DIRTY:
		return 0;		/* a payload, if any, is ignored */
	case PROTO_RAM_DIRTY_LOG:
		return parse_dirty_log(h, p, r, e);
	case PROTO_READ_PAGES:
	case PROTO_WRITE_PAGES:
		return parse_pages(h, p, r, e);
	case PROTO_SAVE_STATE:
	case PROTO_LOAD_STATE:
		return parse_state(h, p, r, e);
	case PROTO_RAM_MAP:
		return parse_ram_map(h, p, r, e);
	case PROTO_STOP:
		return parse_stop(h, p, r, e);
	case PROTO_GET_REGS:
	case PROTO_SET_REGS:
		return parse_regs(h, p, lim, r, e);
	case PROTO_READ_MEM:
	case PROTO_WRITE_MEM:
		return parse_mem(h, p, r, e);
	case PROTO_CONSOLE_WRITE:
	case PROTO_KEYBOARD:
		r->u.input.bytes = p;
		r->u.input.len = h->length;
		return 0;
	case PROTO_CONSOLE_READ:
		return parse_console_read(h, p, r, e);
	case PROTO_GUEST_COMMAND:
		return parse_guest_command(h, p, r, e);
	case PROTO_POINTER:
		return parse_pointer(h, p, r, e);
	case PROTO_MOUSE:
		return parse_mouse(h, p, r, e);
	default:
		return fail(e, PROTO_E_UNKNOWN_TYPE, "unknown request type %u", h->type);
	}
}
