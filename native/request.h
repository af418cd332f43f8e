/* Control requests checked against their type's rules (PROTOCOL.md, "Requests") before a
 * handler runs. The parser needs only the bytes and the VM's fixed shape (its vCPU count), so it
 * can be fed anything (the fuzzer does); checks that need the VM's state stay in the handlers
 * (control_ops.c). Error codes and messages are the ones the client gets. */
#ifndef QVMM_REQUEST_H
#define QVMM_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define STOP_DEFAULT_TIMEOUT_MS 3000
#define STOP_MAX_TIMEOUT_MS     600000
#define CONSOLE_READ_DEFAULT    (64u << 10)

struct request_limits {
	unsigned nr_vcpus;
};

/* What a request asks for; pointers point into its payload. */
struct request {
	uint16_t type;
	union {
		struct {
			char secret[PROTO_SECRET_HEX + 1];	/* HELLO: checked by auth.c */
		} hello;
		uint64_t vcpu;			/* GET_REGS, SET_REGS: below nr_vcpus */
		uint64_t timeout_ms;		/* STOP: at most STOP_MAX_TIMEOUT_MS */
		struct {			/* READ_MEM, WRITE_MEM */
			uint64_t gpa;
			uint32_t len;		/* at most PROTO_MAX_MEM_IO */
			const uint8_t *data;	/* WRITE_MEM: the len bytes to write */
		} mem;
		struct {			/* CONSOLE_WRITE, KEYBOARD: the whole payload */
			const uint8_t *bytes;
			size_t len;
		} input;
		uint32_t console_max;		/* CONSOLE_READ: at most SERIAL_RING_SIZE */
		uint32_t command;		/* GUEST_COMMAND: non-zero */
		struct {
			uint32_t x, y, buttons;
		} pointer;			/* POINTER */
		struct {
			int32_t dx, dy, wheel;	/* |dx|, |dy| <= PS2MOUSE_MAX_DELTA, |wheel| <= MAX_WHEEL */
			uint32_t buttons;	/* <= PS2MOUSE_BUTTONS */
		} mouse;			/* MOUSE */
		struct {			/* SAVE_STATE: offset, max; LOAD_STATE: total, offset, data */
			uint64_t total, offset;
			uint32_t max;		/* SAVE_STATE: 1..PROTO_STATE_CHUNK */
			const uint8_t *data;	/* LOAD_STATE: len bytes, at most PROTO_STATE_CHUNK */
			uint32_t len;
		} state;
		uint64_t ram_from;		/* RAM_MAP: ranges at or above this gpa */
		uint32_t dirty_log_on;		/* RAM_DIRTY_LOG: 1 on, 0 off */
		struct {			/* READ_PAGES, WRITE_PAGES (request_page_run reads a run) */
			uint32_t count;		/* runs, 1..PROTO_PAGES_MAX */
			const uint8_t *runs;	/* count x (u64 gpa, u32 pages), unaligned */
			uint32_t pages;		/* their sum, 1..PROTO_PAGES_MAX */
			const uint8_t *data;	/* WRITE_PAGES: pages x PROTO_PAGE_SIZE bytes */
		} pages;
	} u;
};

struct request_error {
	unsigned code;			/* PROTO_E_* */
	char message[256];
};

/* Refuses replies and events sent as requests. 0, or -1 with e filled. */
int request_check_flags(const struct proto_header *h, struct request_error *e);
/* Checks the payload (h->length bytes) of a request of type h->type and fills r.
 * 0, or -1 with e filled (UNKNOWN_TYPE for a type the helper does not serve). */
int request_parse(const struct proto_header *h, const uint8_t *payload,
		  const struct request_limits *lim, struct request *r, struct request_error *e);

/* Run i (below r->u.pages.count) of a parsed READ_PAGES / WRITE_PAGES: page-aligned gpa, pages >= 1,
 * gpa + pages * PROTO_PAGE_SIZE without overflow. */
void request_page_run(const struct request *r, uint32_t i, uint64_t *gpa, uint32_t *pages);

#endif
