/* Control stream framing: header first, then exactly `length` payload bytes. */
#include "framing.h"

#include <string.h>

enum frame_state frame_check(const uint8_t *buf, size_t len, struct proto_header *h, size_t *want)
{
	if (len < PROTO_HEADER_SIZE) {
		*want = PROTO_HEADER_SIZE - len;
		return FRAME_INCOMPLETE;
	}
	memcpy(h, buf, sizeof(*h));
	if (h->length > PROTO_MAX_PAYLOAD) {
		*want = 0;
		return FRAME_TOO_LARGE;
	}
	*want = PROTO_HEADER_SIZE + (size_t)h->length > len ? PROTO_HEADER_SIZE + h->length - len : 0;
	return *want ? FRAME_INCOMPLETE : FRAME_COMPLETE;
}
