/* JSON writing into a growable buffer, and a tiny flat-object reader for request payloads. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(struct sbuf *sb)
{
	memset(sb, 0, sizeof(*sb));
}

void sb_free(struct sbuf *sb)
{
	free(sb->data);
	sb_init(sb);
}

static int sb_reserve(struct sbuf *sb, size_t extra)
{
	size_t want = sb->len + extra + 1;
	char *p;

	if (sb->oom)
		return -1;
	if (want <= sb->cap)
		return 0;
	if (want < sb->cap * 2)
		want = sb->cap * 2;
	if (want < 256)
		want = 256;
	p = realloc(sb->data, want);
	if (!p) {
		sb->oom = 1;
		return -1;
	}
	sb->data = p;
	sb->cap = want;
	return 0;
}

void sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || sb_reserve(sb, (size_t)n) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

void sb_json_str(struct sbuf *sb, const char *s)
{
	sb_printf(sb, "\"");
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			sb_printf(sb, "\\%c", c);
		else if (c == '\n')
			sb_printf(sb, "\\n");
		else if (c < 0x20 || c >= 0x7f)
			sb_printf(sb, "\\u%04x", c);
		else
			sb_printf(sb, "%c", c);
	}
	sb_printf(sb, "\"");
}

static size_t skip_ws(const char *s, size_t i, size_t len)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* Finds the value following "key": at nesting depth 1; returns a pointer into json or NULL. */
static const char *json_find(const char *json, size_t len, const char *key)
{
	size_t klen = strlen(key), i;
	int depth = 0, in_str = 0;

	for (i = 0; i < len; i++) {
		char c = json[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == '"') {
			if (depth == 1 && i + klen + 1 < len && !memcmp(json + i + 1, key, klen) &&
			    json[i + 1 + klen] == '"') {
				size_t j = skip_ws(json, i + klen + 2, len);
				if (j < len && json[j] == ':') {
					j = skip_ws(json, j + 1, len);
					return j < len ? json + j : NULL;
				}
			}
			in_str = 1;
		}
	}
	return NULL;
}

int json_get_u64(const char *json, size_t len, const char *key, uint64_t *out)
{
	const char *p = json_find(json, len, key), *end = json + len;
	uint64_t v = 0;
	int digits = 0;

	if (!p)
		return -1;
	for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (!digits || (p < end && (*p == '.' || *p == 'e' || *p == 'E')))
		return -1;
	*out = v;
	return 0;
}

int json_get_str(const char *json, size_t len, const char *key, char *out, size_t outlen)
{
	const char *p = json_find(json, len, key), *end = json + len;
	size_t n = 0;

	if (!p || *p != '"' || outlen == 0)
		return -1;
	for (p++; p < end && *p != '"'; p++) {
		if (*p == '\\' || (unsigned char)*p < 0x20)
			return -1;	/* escapes are not needed by any request field */
		if (n + 1 >= outlen)
			return -1;
		out[n++] = *p;
	}
	if (p >= end)
		return -1;
	out[n] = 0;
	return 0;
}

/* Copies a token (string body or bare word) of at most 63 bytes; returns the index after it. */
static size_t take_token(const char *s, size_t i, size_t len, char *out, int *is_string)
{
	size_t n = 0;

	*is_string = s[i] == '"';
	if (*is_string) {
		for (i++; i < len && s[i] != '"'; i++) {
			if (s[i] == '\\' || (unsigned char)s[i] < 0x20 || n >= 63)
				return 0;
			out[n++] = s[i];
		}
		if (i >= len)
			return 0;
		i++;
	} else {
		for (; i < len && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')); i++) {
			if (n >= 63)
				return 0;
			out[n++] = s[i];
		}
		if (!n)
			return 0;
	}
	out[n] = 0;
	return i;
}

int json_flat_each(const char *json, size_t len, json_member_cb cb, void *opaque)
{
	char key[64], val[64];
	size_t i = skip_ws(json, 0, len);
	int is_str, r;

	if (i >= len || json[i] != '{')
		return -1;
	i = skip_ws(json, i + 1, len);
	if (i < len && json[i] == '}')
		return skip_ws(json, i + 1, len) == len ? 0 : -1;
	for (;;) {
		if (i >= len || json[i] != '"' || !(i = take_token(json, i, len, key, &is_str)))
			return -1;
		i = skip_ws(json, i, len);
		if (i >= len || json[i] != ':')
			return -1;
		i = skip_ws(json, i + 1, len);
		if (i >= len || !(i = take_token(json, i, len, val, &is_str)))
			return -1;
		r = cb(opaque, key, val, is_str);
		if (r)
			return r;
		i = skip_ws(json, i, len);
		if (i < len && json[i] == ',') {
			i = skip_ws(json, i + 1, len);
			continue;
		}
		if (i < len && json[i] == '}')
			return skip_ws(json, i + 1, len) == len ? 0 : -1;
		return -1;
	}
}
