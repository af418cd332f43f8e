/* Shared between the control loop (control.c) and the request handlers (control_ops.c). */
#ifndef QVMM_CONTROL_OPS_H
#define QVMM_CONTROL_OPS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "control_pending.h"
#include "proto.h"
#include "request.h"
#include "statebuf.h"
#include "vm.h"

struct client {
	int fd;
	int hello;			/* HELLO accepted: requests and events flow */
	int dead;			/* connection failed: close it */
	int closing;			/* close once the output is flushed */
	uint8_t *in;			/* one whole message (header + payload) */
	size_t in_len;
	uint8_t *out;
	size_t out_off, out_len, out_cap;	/* pending output is out[out_off, out_off + out_len) */
	uint64_t console_pos;		/* absolute position in the console ring */
	uint64_t stalled_since_ns;	/* output at the high water and nothing sent since; 0: not */
};

struct pending_stop {
	int active;
	uint32_t id;			/* request id to answer, or 0 */
	uint64_t deadline_ns;
};

/* VM state moving through the socket in chunks (control_state.c). */
struct state_xfer {
	struct state_out saved;		/* SAVE_STATE's blob, kept for its later chunks until the VM runs */
	int have_saved;
	uint8_t *upload;		/* LOAD_STATE's blob being received */
	uint64_t upload_total, upload_received;
};

struct server {
	struct vm *vm;
	struct client client;		/* the controlling connection (authenticated) */
	struct pending_set pending;	/* connections not yet authenticated */
	const struct auth_secret *secret;
	struct pending_stop stop;
	uint32_t event_seq;
	uint64_t started_ns;
	uint64_t console_sent_ns;	/* when console output was last streamed */
	int exit_status;		/* >= 0 once the helper should exit */
	struct state_xfer xfer;
};

void client_send(struct client *c, uint16_t type, uint16_t flags, uint32_t id, const void *payload,
		 size_t len);
void client_error(struct client *c, uint16_t type, uint32_t id, unsigned code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Handles one request (payload of h->length bytes). */
void control_handle(struct server *s, const struct proto_header *h, const uint8_t *payload);
/* Stops the vCPUs at once and sets the exit status (forced: guest did not acknowledge). */
void control_stop_now(struct server *s, int forced);
/* SAVE_STATE, LOAD_STATE, RAM_MAP, RAM_CHECKSUM (control_state.c). */
void control_state_op(struct server *s, const struct proto_header *h, const struct request *r);
/* RAM_DIRTY_LOG, RAM_DIRTY, READ_PAGES, WRITE_PAGES (control_migrate.c). */
void control_migrate_op(struct server *s, const struct proto_header *h, const struct request *r);
/* Forgets a kept SAVE_STATE blob and an unfinished upload (the VM runs again, or at exit). */
void control_state_drop(struct server *s);
/* Finishes a STOP once the guest acknowledged or the deadline passed. */
void control_stop_progress(struct server *s);

#endif
