/* A growable string buffer with just enough JSON writing for probe, status and stats replies. */
#ifndef QVMM_JSON_H
#define QVMM_JSON_H

#include <stddef.h>
#include <stdint.h>

struct sbuf {
	char *data;
	size_t len;
	size_t cap;
	int oom;		/* set once an allocation failed; the content is then truncated */
};

void sb_init(struct sbuf *sb);
void sb_free(struct sbuf *sb);
void sb_printf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a quoted, escaped JSON string. */
void sb_json_str(struct sbuf *sb, const char *s);

/* Minimal JSON reading for request payloads: finds "key" at the top level of a flat object
 * and parses its value. Return 0 when found and well-formed, -1 otherwise. */
int json_get_u64(const char *json, size_t len, const char *key, uint64_t *out);
int json_get_str(const char *json, size_t len, const char *key, char *out, size_t outlen);



/* Walks a flat JSON object whose values are strings (no escapes), unsigned integers or
 * booleans; calls cb(key, value-text, is_string) for each member. Keys and values longer than
 * 63 bytes are refused. Returns 0, -1 if malformed, or the first non-zero cb result. */
typedef int (*json_member_cb)(void *opaque, const char *key, const char *value, int is_string);
int json_flat_each(const char *json, size_t len, json_member_cb cb, void *opaque);
#endif
