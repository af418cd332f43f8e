/* Connections to the control socket that have not authenticated yet. Each may send one message,
 * a HELLO with the VM's secret, within PROTO_AUTH_TIMEOUT_MS; until then it can neither see nor
 * change anything, and the controlling connection stays as it is. */
#ifndef QVMM_CONTROL_PENDING_H
#define QVMM_CONTROL_PENDING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth.h"
#include "proto.h"

struct pending_conn {
	int fd;				/* -1: the slot is free */
	uint64_t deadline_ns;
	pid_t pid;			/* the peer, from SO_PEERCRED, for the log */
	uid_t uid;
	size_t in_len;
	uint8_t in[PROTO_HEADER_SIZE + PROTO_HELLO_MAX];
};

/* Refusals are logged, but at most REFUSAL_LOG_BURST per second: a flood cannot fill the log. */
struct refusal_log {
	uint64_t window_ns;
	unsigned logged, suppressed;
};

struct pending_set {
	struct pending_conn slot[PROTO_MAX_PENDING];
	struct refusal_log log;
	uint64_t refused;		/* all refusals since start */
};

void pending_init(struct pending_set *ps);
/* Takes a just-accepted connection; when every slot is busy the oldest is refused, so strays
 * that never speak cannot keep the agent out. */
void pending_add(struct pending_set *ps, int fd);
/* Milliseconds until the next pending connection times out, or -1 with none pending. */
int pending_timeout_ms(const struct pending_set *ps);
/* Closes the pending connections whose time is up. */
void pending_expire(struct pending_set *ps);
/* Reads what slot i has. Returns its fd once it sent a valid HELLO with the secret (the slot is
 * then free; the HELLO is copied to *h and hello, PROTO_HELLO_MAX bytes); -1 otherwise (still
 * waiting, or refused and closed). */
int pending_read(struct pending_set *ps, int i, const struct auth_secret *secret,
		 struct proto_header *h, uint8_t *hello);
void pending_close_all(struct pending_set *ps);

#endif
