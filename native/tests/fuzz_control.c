/* Bounded, seeded fuzz of the control-message parser: byte streams go through the framing
 * (frame_check, fed in random chunks as recv() would deliver them, into a buffer of the control
 * loop's size) and every complete message through the flag and per-type payload checks
 * (request_check_flags, request_parse), each payload as an exact-size heap copy for ASan.
 * Streams of well-formed requests must come out as exactly the messages and values generated;
 * mutated, mistyped, mis-framed and random streams must keep the parser's promises. */
#include <inttypes.h>
#include <stdint.h>

#include "check.h"
#include "framing.h"
#include "fuzz.h"
#include "json.h"
#include "proto.h"
#include "ps2mouse.h"
#include "request.h"
#include "serial.h"

#define MAX_MESSAGES 6
#define STREAM_CAP   (64u << 10)
#define CLEAN_WRITE_PAGES 2	/* pages of a generated WRITE_PAGES: six of them fit a stream */

/* The request types the helper serves: 1-23, then live migration's 30-33. */
static const uint16_t served[] = {
	PROTO_HELLO, PROTO_STATUS, PROTO_START, PROTO_PAUSE, PROTO_RESUME, PROTO_STOP,
	PROTO_GET_REGS, PROTO_SET_REGS, PROTO_READ_MEM, PROTO_WRITE_MEM, PROTO_STATS,
	PROTO_CONSOLE_WRITE, PROTO_CONSOLE_READ, PROTO_KEYBOARD, PROTO_GUEST_COMMAND,
	PROTO_DISPLAY_INFO, PROTO_DIRTY, PROTO_POINTER, PROTO_MOUSE, PROTO_SAVE_STATE,
	PROTO_LOAD_STATE, PROTO_RAM_MAP, PROTO_RAM_CHECKSUM, PROTO_RAM_DIRTY_LOG, PROTO_RAM_DIRTY,
	PROTO_READ_PAGES, PROTO_WRITE_PAGES,
};

static int is_served(uint16_t type)
{
	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++)
		if (served[i] == type)
			return 1;
	return 0;
}

/* One generated message and, if it is well-formed, what parsing it must give (pointers in
 * want are not set: they point into the payload copy the parser gets). */
struct message {
	struct proto_header h;
	int valid;
	struct request want;
};

struct stream {
	uint8_t bytes[STREAM_CAP];
	size_t len;
	struct message msg[MAX_MESSAGES];
	unsigned count;
	int framing_intact;		/* every header's length is true and within the limit */
	unsigned nr_vcpus;
};

static unsigned long parsed_ok, parsed_error, frames_too_large;

static size_t json_ws(struct rng *r, char *out)
{
	return rng_percent(r, 80) ? 0 : (size_t)sprintf(out, "%s", rng_percent(r, 50) ? " " : "\n\t");
}

/* READ_PAGES / WRITE_PAGES: 1.. runs, page-aligned anywhere in the address space (the parser
 * leaves "is it RAM" to the handler), up to PROTO_PAGES_MAX pages (CLEAN_WRITE_PAGES for a write,
 * which carries them), sometimes right at the top of the address space. */
static size_t page_runs(struct rng *r, uint16_t type, uint8_t *p, struct request *want)
{
	uint32_t budget = type == PROTO_WRITE_PAGES ? 1 + rng_below(r, CLEAN_WRITE_PAGES)
						   : 1 + rng_below(r, PROTO_PAGES_MAX);
	uint32_t count = 0, total = 0;
	size_t n = 4;

	while (total < budget && (count == 0 || rng_percent(r, 85))) {
		uint32_t pages = 1 + rng_below(r, budget - total);
		uint64_t top = UINT64_MAX - (uint64_t)(pages + 1) * PROTO_PAGE_SIZE + 1;
		uint64_t gpa = rng_percent(r, 5) ? top : (rng_next(r) >> rng_below(r, 64)) % top;

		gpa &= ~(uint64_t)(PROTO_PAGE_SIZE - 1);
		memcpy(p + n, &gpa, 8);
		memcpy(p + n + 8, &pages, 4);
		n += PROTO_PAGE_RUN_SIZE;
		total += pages;
		count++;
	}
	memcpy(p, &count, 4);
	if (type == PROTO_WRITE_PAGES)
		for (size_t i = 0; i < (size_t)total * PROTO_PAGE_SIZE; i++)
			p[n++] = (uint8_t)rng_next(r);
	want->u.pages.count = count;
	want->u.pages.pages = total;
	return n;
}

/* A well-formed payload for type into p; returns its length and fills *want. */
static size_t valid_payload(struct rng *r, uint16_t type, unsigned nr_vcpus, uint8_t *p,
			    struct request *want)
{
	char *j = (char *)p;
	size_t n = 0;

	memset(want, 0, sizeof(*want));
	want->type = type;
	switch (type) {
	case PROTO_HELLO:
		for (int i = 0; i < PROTO_SECRET_HEX; i++)
			want->u.hello.secret[i] = "0123456789abcdef"[rng_below(r, 16)];
		n = (size_t)sprintf(j, "{%s\"version\"%s:%d,\"secret\":\"%s\"%s}",
				    rng_percent(r, 30) ? "\"x\":\"y\"," : "", rng_percent(r, 20) ? " " : "",
				    PROTO_VERSION, want->u.hello.secret, rng_percent(r, 20) ? ",\"z\":2" : "");
		break;
	case PROTO_STOP:
		want->u.timeout_ms = STOP_DEFAULT_TIMEOUT_MS;
		if (rng_percent(r, 70)) {
			want->u.timeout_ms = rng_below(r, STOP_MAX_TIMEOUT_MS + 1);
			n = (size_t)sprintf(j, "{\"timeoutMs\":%" PRIu64 "}", want->u.timeout_ms);
		}
		break;
	case PROTO_GET_REGS:
	case PROTO_SET_REGS:
		want->u.vcpu = rng_below(r, nr_vcpus);
		n = (size_t)sprintf(j, "{");
		n += json_ws(r, j + n);
		n += (size_t)sprintf(j + n, "\"vcpu\":%" PRIu64, want->u.vcpu);
		if (type == PROTO_SET_REGS)
			n += (size_t)sprintf(j + n, ",\"rip\":\"0x%x\"", rng_below(r, 1u << 30));
		n += (size_t)sprintf(j + n, "}");
		break;
	case PROTO_READ_MEM:
	case PROTO_WRITE_MEM: {
		uint64_t gpa = rng_next(r) >> rng_below(r, 64);
		uint32_t len = type == PROTO_READ_MEM ? rng_below(r, PROTO_MAX_MEM_IO + 1)
						      : rng_below(r, rng_percent(r, 5) ? 8192 : 64);
		uint32_t flags = 0;
		memcpy(p, &gpa, 8);
		memcpy(p + 8, &len, 4);
		memcpy(p + 12, &flags, 4);
		n = 16;
		if (type == PROTO_WRITE_MEM)
			for (uint32_t i = 0; i < len; i++)
				p[n++] = (uint8_t)rng_next(r);
		want->u.mem.gpa = gpa;
		want->u.mem.len = len;
		break;
	}
	case PROTO_CONSOLE_WRITE:
	case PROTO_KEYBOARD:
		n = rng_below(r, 100);
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)rng_next(r);
		want->u.input.len = n;
		break;
	case PROTO_CONSOLE_READ:
		want->u.console_max = CONSOLE_READ_DEFAULT;
		if (rng_percent(r, 60)) {
			want->u.console_max = rng_below(r, SERIAL_RING_SIZE + 1);
			memcpy(p, &want->u.console_max, 4);
			n = 4;
		}
		break;
	case PROTO_GUEST_COMMAND:
		want->u.command = 1 + rng_below(r, UINT32_MAX);
		memcpy(p, &want->u.command, 4);
		n = 4;
		break;
	case PROTO_POINTER:
		want->u.pointer.x = (uint32_t)rng_next(r);
		want->u.pointer.y = rng_below(r, 4096);
		want->u.pointer.buttons = rng_below(r, 8);
		if (rng_percent(r, 50))
			n = (size_t)sprintf(j, "{\"x\":%u,\"y\":%u,\"buttons\":%u}", want->u.pointer.x,
					    want->u.pointer.y, want->u.pointer.buttons);
		else		/* any order, any blanks */
			n = (size_t)sprintf(j, "{\"buttons\":%u, \"y\" :%u,\n\"x\": %u}",
					    want->u.pointer.buttons, want->u.pointer.y, want->u.pointer.x);
		break;
	case PROTO_MOUSE: {
		int32_t v[3] = {
			(int32_t)rng_below(r, 2 * PS2MOUSE_MAX_DELTA + 1) - PS2MOUSE_MAX_DELTA,
			(int32_t)rng_below(r, 2 * PS2MOUSE_MAX_DELTA + 1) - PS2MOUSE_MAX_DELTA,
			(int32_t)rng_below(r, 2 * PS2MOUSE_MAX_WHEEL + 1) - PS2MOUSE_MAX_WHEEL,
		};
		uint32_t buttons = rng_below(r, PS2MOUSE_BUTTONS + 1);
		memcpy(p, v, sizeof(v));
		memcpy(p + 12, &buttons, 4);
		n = 16;
		want->u.mouse.dx = v[0];
		want->u.mouse.dy = v[1];
		want->u.mouse.wheel = v[2];
		want->u.mouse.buttons = buttons;
		break;
	}
	case PROTO_SAVE_STATE:
		want->u.state.offset = rng_next(r);
		want->u.state.max = 1 + rng_below(r, PROTO_STATE_CHUNK);
		memcpy(p, &want->u.state.offset, 8);
		memcpy(p + 8, &want->u.state.max, 4);
		n = 12;
		break;
	case PROTO_LOAD_STATE:
		want->u.state.len = rng_below(r, 64);
		want->u.state.offset = rng_below(r, 1u << 24);
		want->u.state.total = want->u.state.offset + want->u.state.len + rng_below(r, 1u << 20);
		memcpy(p, &want->u.state.total, 8);
		memcpy(p + 8, &want->u.state.offset, 8);
		for (size_t i = 0; i < want->u.state.len; i++)
			p[16 + i] = (uint8_t)rng_next(r);
		n = 16 + want->u.state.len;
		break;
	case PROTO_RAM_MAP:
		if (rng_percent(r, 50)) {
			want->u.ram_from = rng_next(r);
			memcpy(p, &want->u.ram_from, 8);
			n = 8;
		}
		break;
	case PROTO_RAM_DIRTY_LOG:
		want->u.dirty_log_on = rng_below(r, 2);
		memcpy(p, &want->u.dirty_log_on, 4);
		n = 4;
		break;
	case PROTO_READ_PAGES:
	case PROTO_WRITE_PAGES:
		n = page_runs(r, type, p, want);
		break;
	default:		/* STATUS, START, PAUSE, RESUME, STATS, DISPLAY_INFO, DIRTY, RAM_CHECKSUM,
				 * RAM_DIRTY */
		if (rng_percent(r, 20)) {	/* a payload they do not read */
			n = rng_below(r, 32);
			for (size_t i = 0; i < n; i++)
				p[i] = (uint8_t)rng_next(r);
		}
		break;
	}
	return n;
}

static void put_header(struct stream *s, const struct proto_header *h)
{
	memcpy(s->bytes + s->len, h, sizeof(*h));
	s->len += sizeof(*h);
}

/* Appends one message; clean = well-formed, otherwise it may be damaged in any way. */
static void add_message(struct rng *r, struct stream *s, int clean)
{
	static uint8_t payload[STREAM_CAP];
	struct message *m = &s->msg[s->count++];
	uint16_t type = served[rng_below(r, sizeof(served) / sizeof(served[0]))];
	size_t n = valid_payload(r, type, s->nr_vcpus, payload, &m->want);

	m->h = (struct proto_header){ .type = type, .id = (uint32_t)rng_next(r) };
	m->valid = clean;
	if (!clean) {
		if (rng_percent(r, 60))
			mutate(r, payload, &n, 20000);
		if (rng_percent(r, 10))
			m->h.type = (uint16_t)rng_next(r);
		if (rng_percent(r, 10))
			m->h.flags = (uint16_t)rng_next(r);
	}
	n = min_size(n, STREAM_CAP - s->len - PROTO_HEADER_SIZE);
	m->h.length = (uint32_t)n;
	if (!clean && rng_percent(r, 8)) {		/* a header that lies about its length */
		s->framing_intact = 0;
		m->h.length = rng_percent(r, 30) ? PROTO_MAX_PAYLOAD + 1 + rng_below(r, 1000)
						 : (uint32_t)rng_below(r, (uint32_t)n + 40);
	}
	put_header(s, &m->h);
	memcpy(s->bytes + s->len, payload, n);
	s->len += n;
}

static void random_stream(struct rng *r, struct stream *s)
{
	s->len = rng_below(r, 400);
	for (size_t i = 0; i < s->len; i++)
		s->bytes[i] = (uint8_t)(rng_percent(r, 50) ? rng_below(r, 20) : rng_next(r));
	s->framing_intact = 0;
}

static void check_error(const struct request_error *e)
{
	CHECK(e->code >= PROTO_E_BAD_MESSAGE && e->code <= PROTO_E_AUTH);
	CHECK(e->message[0] != 0 && memchr(e->message, 0, sizeof(e->message)) != NULL);
}

/* READ_PAGES / WRITE_PAGES: every run aligned, not empty, not past 2^64, at most PROTO_PAGES_MAX
 * pages in all, and the payload exactly the header (+ the data of a write). */
static void check_page_runs(const struct proto_header *h, const uint8_t *p, const struct request *r)
{
	size_t head = 4 + (size_t)r->u.pages.count * PROTO_PAGE_RUN_SIZE;
	uint64_t sum = 0;
	uint32_t n;

	memcpy(&n, p, 4);
	CHECK(n == r->u.pages.count && n >= 1 && n <= PROTO_PAGES_MAX);
	CHECK(r->u.pages.runs == p + 4);
	for (uint32_t i = 0; i < r->u.pages.count; i++) {
		uint64_t gpa;
		uint32_t pages;
		request_page_run(r, i, &gpa, &pages);
		CHECK(gpa % PROTO_PAGE_SIZE == 0 && pages >= 1);
		CHECK((uint64_t)pages * PROTO_PAGE_SIZE <= UINT64_MAX - gpa);
		sum += pages;
	}
	CHECK(sum == r->u.pages.pages && sum >= 1 && sum <= PROTO_PAGES_MAX);
	if (h->type == PROTO_WRITE_PAGES)
		CHECK(h->length == head + (size_t)r->u.pages.pages * PROTO_PAGE_SIZE &&
		      r->u.pages.data == p + head);
	else
		CHECK(h->length == head && r->u.pages.data == NULL);
}

/* What every successful parse promises, whatever the input. */
static void check_parsed(const struct proto_header *h, const uint8_t *p, const struct request *r,
			 unsigned nr_vcpus)
{
	uint64_t v;

	CHECK_EQ(r->type, h->type);
	switch (h->type) {
	case PROTO_HELLO:
		CHECK(json_get_u64((const char *)p, h->length, "version", &v) == 0 && v == PROTO_VERSION);
		CHECK_EQ(strlen(r->u.hello.secret), PROTO_SECRET_HEX);
		CHECK(h->length <= PROTO_HELLO_MAX);
		break;
	case PROTO_STOP:
		CHECK(r->u.timeout_ms <= STOP_MAX_TIMEOUT_MS);
		break;
	case PROTO_GET_REGS:
	case PROTO_SET_REGS:
		CHECK(r->u.vcpu < nr_vcpus);
		break;
	case PROTO_READ_MEM:
	case PROTO_WRITE_MEM:
		CHECK(h->length >= 16 && r->u.mem.len <= PROTO_MAX_MEM_IO);
		if (h->type == PROTO_WRITE_MEM)
			CHECK(r->u.mem.data == p + 16 && h->length == 16 + r->u.mem.len);
		else
			CHECK(r->u.mem.data == NULL);
		break;
	case PROTO_CONSOLE_WRITE:
	case PROTO_KEYBOARD:
		CHECK(r->u.input.bytes == p && r->u.input.len == h->length);
		break;
	case PROTO_CONSOLE_READ:
		CHECK((h->length == 0 || h->length == 4) && r->u.console_max <= SERIAL_RING_SIZE);
		break;
	case PROTO_GUEST_COMMAND:
		CHECK(h->length == 4 && r->u.command != 0 && !memcmp(&r->u.command, p, 4));
		break;
	case PROTO_POINTER:
		CHECK(json_get_u64((const char *)p, h->length, "x", &v) == 0 && v == r->u.pointer.x);
		CHECK(json_get_u64((const char *)p, h->length, "y", &v) == 0 && v == r->u.pointer.y);
		break;
	case PROTO_MOUSE: {
		int32_t v[3];
		uint32_t buttons;
		CHECK_EQ(h->length, 16);
		memcpy(v, p, sizeof(v));
		memcpy(&buttons, p + 12, 4);
		CHECK(v[0] == r->u.mouse.dx && v[1] == r->u.mouse.dy && v[2] == r->u.mouse.wheel &&
		      buttons == r->u.mouse.buttons);
		CHECK(r->u.mouse.dx >= -PS2MOUSE_MAX_DELTA && r->u.mouse.dx <= PS2MOUSE_MAX_DELTA);
		CHECK(r->u.mouse.dy >= -PS2MOUSE_MAX_DELTA && r->u.mouse.dy <= PS2MOUSE_MAX_DELTA);
		CHECK(r->u.mouse.wheel >= -PS2MOUSE_MAX_WHEEL && r->u.mouse.wheel <= PS2MOUSE_MAX_WHEEL);
		CHECK(r->u.mouse.buttons <= PS2MOUSE_BUTTONS);
		break;
	}
	case PROTO_SAVE_STATE:
		CHECK(h->length == 12 && r->u.state.max >= 1 && r->u.state.max <= PROTO_STATE_CHUNK);
		break;
	case PROTO_LOAD_STATE:
		CHECK(h->length >= 16 && r->u.state.len == h->length - 16 &&
		      r->u.state.len <= PROTO_STATE_CHUNK && r->u.state.data == p + 16);
		CHECK(r->u.state.offset <= r->u.state.total &&
		      r->u.state.len <= r->u.state.total - r->u.state.offset);
		break;
	case PROTO_RAM_MAP:
		CHECK(h->length == 0 || h->length == 8);
		break;
	case PROTO_RAM_DIRTY_LOG:
		CHECK(h->length == 4 && r->u.dirty_log_on <= 1 && !memcmp(&r->u.dirty_log_on, p, 4));
		break;
	case PROTO_READ_PAGES:
	case PROTO_WRITE_PAGES:
		check_page_runs(h, p, r);
		break;
	case PROTO_RAM_DIRTY:
	case PROTO_STATUS:
	case PROTO_START:
	case PROTO_PAUSE:
	case PROTO_RESUME:
	case PROTO_STATS:
	case PROTO_DISPLAY_INFO:
	case PROTO_DIRTY:
	case PROTO_RAM_CHECKSUM:
		break;
	default:
		CHECK(!"an unknown type was accepted");
	}
}

/* A well-formed message parsed to exactly what was generated. */
static void check_expected(const struct request *want, const struct request *got,
			   const uint8_t *p, size_t len)
{
	switch (want->type) {
	case PROTO_HELLO:
		CHECK_STR(got->u.hello.secret, want->u.hello.secret);
		break;
	case PROTO_STOP:
		CHECK_EQ(got->u.timeout_ms, want->u.timeout_ms);
		break;
	case PROTO_GET_REGS:
	case PROTO_SET_REGS:
		CHECK_EQ(got->u.vcpu, want->u.vcpu);
		break;
	case PROTO_READ_MEM:
	case PROTO_WRITE_MEM:
		CHECK_EQ(got->u.mem.gpa, want->u.mem.gpa);
		CHECK_EQ(got->u.mem.len, want->u.mem.len);
		CHECK(got->u.mem.data == (want->type == PROTO_WRITE_MEM ? p + 16 : NULL));
		break;
	case PROTO_CONSOLE_WRITE:
	case PROTO_KEYBOARD:
		CHECK_EQ(got->u.input.len, len);
		break;
	case PROTO_CONSOLE_READ:
		CHECK_EQ(got->u.console_max, want->u.console_max);
		break;
	case PROTO_GUEST_COMMAND:
		CHECK_EQ(got->u.command, want->u.command);
		break;
	case PROTO_POINTER:
		CHECK_EQ(got->u.pointer.x, want->u.pointer.x);
		CHECK_EQ(got->u.pointer.y, want->u.pointer.y);
		CHECK_EQ(got->u.pointer.buttons, want->u.pointer.buttons);
		break;
	case PROTO_SAVE_STATE:
	case PROTO_LOAD_STATE:
		CHECK_EQ(got->u.state.offset, want->u.state.offset);
		CHECK_EQ(got->u.state.max, want->u.state.max);
		CHECK_EQ(got->u.state.total, want->u.state.total);
		CHECK_EQ(got->u.state.len, want->u.state.len);
		break;
	case PROTO_RAM_MAP:
		CHECK_EQ(got->u.ram_from, want->u.ram_from);
		break;
	case PROTO_RAM_DIRTY_LOG:
		CHECK_EQ(got->u.dirty_log_on, want->u.dirty_log_on);
		break;
	case PROTO_READ_PAGES:
	case PROTO_WRITE_PAGES:
		CHECK_EQ(got->u.pages.count, want->u.pages.count);
		CHECK_EQ(got->u.pages.pages, want->u.pages.pages);
		CHECK(got->u.pages.runs == p + 4);
		break;
	case PROTO_MOUSE:
		CHECK_EQ(got->u.mouse.dx, want->u.mouse.dx);
		CHECK_EQ(got->u.mouse.dy, want->u.mouse.dy);
		CHECK_EQ(got->u.mouse.wheel, want->u.mouse.wheel);
		CHECK_EQ(got->u.mouse.buttons, want->u.mouse.buttons);
		break;
	default:
		break;
	}
}

static void handle(const struct stream *s, unsigned index, const struct proto_header *h,
		   const uint8_t *payload)
{
	struct request_limits lim = { .nr_vcpus = s->nr_vcpus };
	uint8_t *p = exact_copy(payload, h->length);
	const struct message *m = index < s->count ? &s->msg[index] : NULL;
	struct request_error e;
	struct request r;
	int rc, flags_ok;

	if (s->framing_intact && m)		/* framing gave back what was sent */
		CHECK(!memcmp(h, &m->h, sizeof(*h)));
	flags_ok = request_check_flags(h, &e) == 0;
	CHECK_EQ(flags_ok, !(h->flags & (PROTO_F_REPLY | PROTO_F_EVENT)));
	rc = flags_ok ? request_parse(h, p, &lim, &r, &e) : -1;
	if (rc == 0) {
		parsed_ok++;
		check_parsed(h, p, &r, s->nr_vcpus);
	} else {
		parsed_error++;
		CHECK_EQ(rc, -1);
		check_error(&e);
		if (flags_ok && !is_served(h->type))
			CHECK_EQ(e.code, PROTO_E_UNKNOWN_TYPE);
	}
	if (m && m->valid && s->framing_intact) {
		if (rc != 0)
			fprintf(stderr, "refused a well-formed type %u: %s\n", h->type, e.message);
		CHECK_EQ(rc, 0);
		if (rc == 0)
			check_expected(&m->want, &r, p, h->length);
	}
	free(p);
}

/* Feeds the stream through the framing in chunks of random size, like recv() into the
 * control loop's one-message buffer; returns the number of complete messages. */
static unsigned run_stream(struct rng *r, const struct stream *s, uint8_t *in)
{
	size_t pos = 0, in_len = 0, want;
	unsigned complete = 0;
	struct proto_header h;

	for (;;) {
		enum frame_state st = frame_check(in, in_len, &h, &want);
		if (st == FRAME_TOO_LARGE) {
			frames_too_large++;
			CHECK(h.length > PROTO_MAX_PAYLOAD && in_len == PROTO_HEADER_SIZE);
			break;		/* the control loop closes the connection */
		}
		if (st == FRAME_COMPLETE) {
			CHECK_EQ(in_len, PROTO_HEADER_SIZE + (size_t)h.length);
			handle(s, complete++, &h, in + PROTO_HEADER_SIZE);
			in_len = 0;
			continue;
		}
		CHECK(want > 0 && in_len + want <= PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD);
		if (pos == s->len)
			break;
		size_t take = min_size(min_size(want, 1 + rng_below(r, 64)), s->len - pos);
		if (rng_percent(r, 30))
			take = min_size(want, s->len - pos);	/* all that is asked for */
		memcpy(in + in_len, s->bytes + pos, take);
		in_len += take;
		pos += take;
	}
	return complete;
}

/* One hand-made request through request_parse: its error code, or 0. */
static unsigned parse_code(uint16_t type, const uint8_t *payload, size_t len, struct request *r)
{
	struct proto_header h = { .length = (uint32_t)len, .type = type, .id = 1 };
	struct request_limits lim = { .nr_vcpus = 1 };
	uint8_t *p = exact_copy(payload, len);
	struct request_error e;
	int rc = request_parse(&h, p, &lim, r, &e);

	if (rc == 0 && (type == PROTO_READ_PAGES || type == PROTO_WRITE_PAGES))
		check_page_runs(&h, p, r);
	free(p);
	return rc == 0 ? 0 : e.code;
}

/* A READ_PAGES / WRITE_PAGES payload of n runs (gpa[i], pages[i]) and `data` bytes after them. */
static size_t pages_payload(uint8_t *p, uint32_t n, const uint64_t *gpa, const uint32_t *pages,
			    size_t data)
{
	size_t at = 4;

	memcpy(p, &n, 4);
	for (uint32_t i = 0; i < n; i++) {
		memcpy(p + at, &gpa[i], 8);
		memcpy(p + at + 8, &pages[i], 4);
		at += PROTO_PAGE_RUN_SIZE;
	}
	memset(p + at, 0xab, data);
	return at + data;
}

/* The edges of the live migration payloads, each side of every bound. */
static void migration_bounds(void)
{
	static uint8_t p[4 + PROTO_PAGES_MAX * PROTO_PAGE_RUN_SIZE + PROTO_MAX_MEM_IO + 4096];
	static uint64_t gpa[PROTO_PAGES_MAX + 1];
	static uint32_t pages[PROTO_PAGES_MAX + 1];
	const uint64_t page = PROTO_PAGE_SIZE;
	struct request r;
	uint32_t v;
	size_t n;

	check_case = "migration bounds";
	for (v = 0; v <= 2; v++)
		CHECK_EQ(parse_code(PROTO_RAM_DIRTY_LOG, (uint8_t *)&v, 4, &r),
			 v <= 1 ? 0 : PROTO_E_INVALID_ARGUMENT);
	v = 1;
	CHECK_EQ(parse_code(PROTO_RAM_DIRTY_LOG, (uint8_t *)&v, 3, &r), PROTO_E_BAD_MESSAGE);
	CHECK_EQ(parse_code(PROTO_RAM_DIRTY_LOG, p, 0, &r), PROTO_E_BAD_MESSAGE);
	CHECK_EQ(parse_code(PROTO_RAM_DIRTY_LOG, p, 5, &r), PROTO_E_BAD_MESSAGE);

	/* 256 one-page runs, every one at its own place: the most a request takes. */
	for (uint32_t i = 0; i <= PROTO_PAGES_MAX; i++) {
		gpa[i] = (uint64_t)i * 3 * page;
		pages[i] = 1;
	}
	n = pages_payload(p, PROTO_PAGES_MAX, gpa, pages, 0);
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, n, &r), 0);
	CHECK_EQ(r.u.pages.count, PROTO_PAGES_MAX);
	n = pages_payload(p, PROTO_PAGES_MAX, gpa, pages, PROTO_MAX_MEM_IO);
	CHECK(n <= PROTO_MAX_PAYLOAD);
	CHECK_EQ(parse_code(PROTO_WRITE_PAGES, p, n, &r), 0);
	CHECK_EQ(parse_code(PROTO_WRITE_PAGES, p, n - 1, &r), PROTO_E_BAD_MESSAGE);
	CHECK_EQ(parse_code(PROTO_WRITE_PAGES, p, n + 1, &r), PROTO_E_BAD_MESSAGE);
	n = pages_payload(p, PROTO_PAGES_MAX + 1, gpa, pages, 0);
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, n, &r), PROTO_E_TOO_LARGE);
	/* One run of 256 pages, then one of 257; runs whose pages would wrap a u32 sum. */
	pages[0] = PROTO_PAGES_MAX;
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, pages_payload(p, 1, gpa, pages, 0), &r), 0);
	pages[0] = PROTO_PAGES_MAX + 1;
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, pages_payload(p, 1, gpa, pages, 0), &r),
		 PROTO_E_TOO_LARGE);
	pages[0] = 1;
	pages[1] = UINT32_MAX;
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, pages_payload(p, 2, gpa, pages, 0), &r),
		 PROTO_E_TOO_LARGE);
	pages[1] = 1;
	/* Alignment, empty runs, no runs, the top of the address space. */
	gpa[1] = 3 * page + 8;
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, pages_payload(p, 2, gpa, pages, 0), &r),
		 PROTO_E_INVALID_ARGUMENT);
	gpa[1] = 3 * page;
	pages[1] = 0;
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, pages_payload(p, 2, gpa, pages, 0), &r),
		 PROTO_E_INVALID_ARGUMENT);
	pages[1] = 1;
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, pages_payload(p, 0, gpa, pages, 0), &r),
		 PROTO_E_INVALID_ARGUMENT);
	gpa[0] = UINT64_MAX - 2 * page + 1;	/* the last page but one: ends below 2^64 */
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, pages_payload(p, 1, gpa, pages, 0), &r), 0);
	pages[0] = 2;				/* would end at 2^64 */
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, pages_payload(p, 1, gpa, pages, 0), &r),
		 PROTO_E_OUT_OF_RANGE);
	pages[0] = 1;
	gpa[0] = 0;
	/* Truncated headers and a READ_PAGES with bytes it must not have. */
	n = pages_payload(p, 2, gpa, pages, 0);
	for (size_t cut = 0; cut < n; cut++)
		CHECK_EQ(parse_code(PROTO_READ_PAGES, p, cut, &r), PROTO_E_BAD_MESSAGE);
	CHECK_EQ(parse_code(PROTO_READ_PAGES, p, n + 1, &r), PROTO_E_BAD_MESSAGE);
	CHECK_EQ(parse_code(PROTO_WRITE_PAGES, p, n, &r), PROTO_E_BAD_MESSAGE);
	CHECK_EQ(parse_code(PROTO_WRITE_PAGES, p, pages_payload(p, 2, gpa, pages, 2 * page), &r), 0);
	CHECK_EQ(r.u.pages.pages, 2);
	check_case = "fuzz_control";
}

int main(int argc, char **argv)
{
	unsigned long iterations = 300000;
	uint64_t seed = 1;
	static struct stream s;
	uint8_t *in = malloc(PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD);
	struct rng r;

	fuzz_args(argc, argv, &iterations, &seed);
	r.state = seed;
	migration_bounds();
	check_case = "fuzz_control";
	for (unsigned long i = 0; i < iterations && !check_failures; i++) {
		unsigned kind = rng_below(&r, 10), complete;
		s.len = s.count = 0;
		s.framing_intact = 1;
		s.nr_vcpus = 1 + rng_below(&r, 8);
		if (kind < 9) {		/* 4 in 10 clean, 5 in 10 damaged */
			unsigned n = 1 + rng_below(&r, MAX_MESSAGES);
			for (unsigned k = 0; k < n; k++)
				add_message(&r, &s, kind < 4);
		} else {
			random_stream(&r, &s);
		}
		complete = run_stream(&r, &s, in);
		if (s.framing_intact)
			CHECK_EQ(complete, s.count);
	}
	free(in);
	printf("fuzz_control: %lu streams, seed %" PRIu64 ", %lu parsed, %lu refused, %lu too large\n",
	       iterations, seed, parsed_ok, parsed_error, frames_too_large);
	return check_done("fuzz_control");
}
