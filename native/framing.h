/* Framing of the control stream (PROTOCOL.md, "Framing"): a message is a 12-byte header and
 * `length` payload bytes. The socket code buffers one message's bytes; this says what they make,
 * so the same logic can be fed bytes from anywhere (the fuzzer does). */
#ifndef QVMM_FRAMING_H
#define QVMM_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

enum frame_state {
	FRAME_INCOMPLETE,	/* *want more bytes are needed */
	FRAME_COMPLETE,		/* header in *h, the payload follows it in the buffer */
	FRAME_TOO_LARGE,	/* header in *h, its length exceeds PROTO_MAX_PAYLOAD: stop reading */
};

/* Looks at the first len buffered bytes of a message (never more than the message). */
enum frame_state frame_check(const uint8_t *buf, size_t len, struct proto_header *h, size_t *want);

#endif
