/* The per-VM secret that makes a control connection the controlling one (PROTOCOL.md,
 * "Authentication"): loaded once from --secret-file at start, compared in constant time. */
#ifndef QVMM_AUTH_H
#define QVMM_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "request.h"

struct auth_secret {
	char hex[PROTO_SECRET_HEX + 1];
};

/* Reads the secret from path: a regular file, not readable or writable by group or others,
 * holding exactly PROTO_SECRET_HEX lowercase hex digits (one trailing newline allowed).
 * 0, or -1 with a message naming the file and what is wrong with it. */
int auth_load(const char *path, struct auth_secret *out, char *err, size_t errlen);

/* Whether given (len bytes) is the secret; the time taken does not depend on where they differ. */
int auth_equal(const struct auth_secret *secret, const char *given, size_t len);

/* Checks a HELLO request end to end: a request, type HELLO, a well-formed payload of the right
 * version, and the right secret. 0, or -1 with e filled (NO_HELLO, BAD_MESSAGE, VERSION, AUTH). */
int auth_check_hello(const struct auth_secret *secret, const struct proto_header *h,
		     const uint8_t *payload, struct request_error *e);

#endif
