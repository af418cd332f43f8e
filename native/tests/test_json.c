/* The JSON writer and the request-payload reader: valid input, malformed input, and the
 * limits (number range, string and token lengths, output buffer sizes). The reader is given
 * exactly the payload's bytes, without a terminating NUL, as the control loop does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"

/* A heap copy of s without its NUL: reading past the end is an ASan report. */
static char *exact(const char *s)
{
	size_t n = strlen(s);
	char *p = malloc(n ? n : 1);

	memcpy(p, s, n);
	return p;
}

static int get_u64(const char *json, const char *key, uint64_t *out)
{
	char *p = exact(json);
	int r = json_get_u64(p, strlen(json), key, out);

	free(p);
	return r;
}

static int get_str(const char *json, const char *key, char *out, size_t outlen)
{
	char *p = exact(json);
	int r = json_get_str(p, strlen(json), key, out, outlen);

	free(p);
	return r;
}

struct members {
	char text[512];		/* "key=value/s;" per member, s = string, w = bare word */
	unsigned count;
	unsigned stop_at;	/* return 5 from this member on (1-based), 0 = never */
};

static int collect(void *opaque, const char *key, const char *value, int is_string)
{
	struct members *m = opaque;
	size_t n = strlen(m->text);

	CHECK(strlen(key) <= 63 && strlen(value) <= 63);
	snprintf(m->text + n, sizeof(m->text) - n, "%s=%s/%c;", key, value, is_string ? 's' : 'w');
	return ++m->count == m->stop_at ? 5 : 0;
}

static int each(const char *json, struct members *m)
{
	char *p = exact(json);
	int r;

	m->text[0] = 0;
	m->count = 0;
	r = json_flat_each(p, strlen(json), collect, m);
	free(p);
	return r;
}

static void test_writer(void)
{
	struct sbuf sb;
	size_t before;

	sb_init(&sb);
	sb_printf(&sb, "{\"n\":%d,", 7);
	sb_printf(&sb, "\"s\":");
	sb_json_str(&sb, "a\"b\\c\nd\x01\x7f\xc3\xa9");
	sb_printf(&sb, ",\"none\":");
	sb_json_str(&sb, NULL);
	sb_printf(&sb, "}");
	CHECK_STR(sb.data,
		  "{\"n\":7,\"s\":\"a\\\"b\\\\c\\nd\\u0001\\u007f\\u00c3\\u00a9\",\"none\":\"\"}");
	CHECK_EQ(sb.len, strlen(sb.data));
	before = sb.len;
	for (int i = 0; i < 1000; i++)		/* grows well past its first 256 bytes */
		sb_printf(&sb, "%04d", i);
	CHECK_EQ(sb.len, before + 4000);
	CHECK_EQ(strlen(sb.data), sb.len);
	CHECK(!memcmp(sb.data + sb.len - 8, "09980999", 8));
	CHECK(!sb.oom);
	sb_free(&sb);
	CHECK(sb.data == NULL && sb.len == 0);
}

static void test_get_u64_valid(void)
{
	uint64_t v = 0;

	CHECK_EQ(get_u64("{\"version\":1}", "version", &v), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(get_u64(" { \"vcpu\" :\t\n 42 } ", "vcpu", &v), 0);
	CHECK_EQ(v, 42);
	CHECK_EQ(get_u64("{\"a\":\"x\",\"b\":[1,2],\"vcpu\":3}", "vcpu", &v), 0);
	CHECK_EQ(v, 3);
	CHECK_EQ(get_u64("{\"x\":{\"vcpu\":1},\"vcpu\":2}", "vcpu", &v), 0);	/* top level only */
	CHECK_EQ(v, 2);
	CHECK_EQ(get_u64("{\"a\":\"q\\\"vcpu\\\":9\",\"vcpu\":4}", "vcpu", &v), 0);
	CHECK_EQ(v, 4);
	CHECK_EQ(get_u64("{\"n\":007}", "n", &v), 0);
	CHECK_EQ(v, 7);
	CHECK_EQ(get_u64("{\"vcpu\"\r\n:\r 5}", "vcpu", &v), 0);	/* all four JSON blanks */
	CHECK_EQ(v, 5);
}

static void test_get_u64_invalid(void)
{
	uint64_t v = 12345;

	CHECK_EQ(get_u64("{\"vcpus\":1}", "vcpu", &v), -1);		/* a longer key */
	CHECK_EQ(get_u64("{\"a\":\"vcpu\",\"b\":1}", "vcpu", &v), -1);	/* a value, not a key */
	CHECK_EQ(get_u64("{\"x\":{\"vcpu\":1}}", "vcpu", &v), -1);	/* nested */
	CHECK_EQ(get_u64("{\"x\":[{\"vcpu\":1}]}", "vcpu", &v), -1);
	CHECK_EQ(get_u64("{\"vcpu\":\"1\"}", "vcpu", &v), -1);
	CHECK_EQ(get_u64("{\"vcpu\":-1}", "vcpu", &v), -1);
	CHECK_EQ(get_u64("{\"vcpu\":1.5}", "vcpu", &v), -1);
	CHECK_EQ(get_u64("{\"vcpu\":1e3}", "vcpu", &v), -1);
	CHECK_EQ(get_u64("{\"vcpu\":}", "vcpu", &v), -1);
	CHECK_EQ(get_u64("{\"vcpu\":", "vcpu", &v), -1);		/* cut short */
	CHECK_EQ(get_u64("{\"vcpu\"", "vcpu", &v), -1);
	CHECK_EQ(get_u64("", "vcpu", &v), -1);
	CHECK_EQ(v, 12345);					/* never written on failure */
}

static void test_get_u64_limits(void)
{
	uint64_t v = 0;

	CHECK_EQ(get_u64("{\"n\":4294967296}", "n", &v), 0);
	CHECK_EQ(v, 4294967296ull);
	CHECK_EQ(get_u64("{\"n\":18446744073709551609}", "n", &v), 0);
	CHECK_EQ(v, 18446744073709551609ull);
	/* The overflow check is conservative: it refuses the last few values below 2^64 too. */
	CHECK_EQ(get_u64("{\"n\":18446744073709551616}", "n", &v), -1);	/* 2^64 */
	CHECK_EQ(get_u64("{\"n\":99999999999999999999}", "n", &v), -1);
	CHECK_EQ(get_u64("{\"n\":100000000000000000000000}", "n", &v), -1);
}

static void test_get_str(void)
{
	char out[8];

	CHECK_EQ(get_str("{\"mode\":\"long\"}", "mode", out, sizeof(out)), 0);
	CHECK_STR(out, "long");
	CHECK_EQ(get_str("{\"mode\":\"\"}", "mode", out, sizeof(out)), 0);
	CHECK_STR(out, "");
	CHECK_EQ(get_str("{\"m\":\"1234567\"}", "m", out, 8), 0);	/* 7 bytes + NUL fit */
	CHECK_STR(out, "1234567");
	CHECK_EQ(get_str("{\"m\":\"12345678\"}", "m", out, 8), -1);	/* one more does not */
	CHECK_EQ(get_str("{\"m\":\"long\"}", "m", out, 0), -1);
	CHECK_EQ(get_str("{\"m\":\"a\\nb\"}", "m", out, sizeof(out)), -1);	/* escapes refused */
	CHECK_EQ(get_str("{\"m\":\"a\tb\"}", "m", out, sizeof(out)), -1);	/* control bytes too */
	CHECK_EQ(get_str("{\"m\":\"abc", "m", out, sizeof(out)), -1);	/* unterminated */
	CHECK_EQ(get_str("{\"m\":1}", "m", out, sizeof(out)), -1);
	CHECK_EQ(get_str("{\"x\":\"m\"}", "m", out, sizeof(out)), -1);
}

static void test_flat_each_valid(void)
{
	struct members m = { .stop_at = 0 };

	CHECK_EQ(each("{\"vcpu\":0,\"rip\":\"0x10\",\"cs.l\":1,\"ok\":true}", &m), 0);
	CHECK_STR(m.text, "vcpu=0/w;rip=0x10/s;cs.l=1/w;ok=true/w;");
	CHECK_EQ(each("{}", &m), 0);
	CHECK_EQ(m.count, 0);
	CHECK_EQ(each(" \r\n{ \t} \n", &m), 0);
	CHECK_EQ(each("\n{ \"a\" :\r\n\"\" ,\t\"b\":2 }\n", &m), 0);
	CHECK_STR(m.text, "a=/s;b=2/w;");
	m.stop_at = 2;				/* the callback's verdict ends the walk */
	CHECK_EQ(each("{\"a\":1,\"b\":2,\"c\":3}", &m), 5);
	CHECK_EQ(m.count, 2);
}

static void test_flat_each_invalid(void)
{
	static const char *const bad[] = {
		"", "   ", "[]", "{", "}", "{\"a\":1", "{\"a\":1}x", "{\"a\":1},", "{\"a\":1,}",
		"{,\"a\":1}", "{\"a\" 1}", "{\"a\":1 \"b\":2}", "{a:1}", "{\"a\":{\"b\":1}}",
		"{\"a\":[1]}", "{\"a\":-1}", "{\"a\":0x1F}", "{\"a\":\"x\\\"y\"}", "{\"a\":\"x\ny\"}",
		"{\"a\":}", "{\"a\"}", "{\"a\":\"unterminated}", "{\"a\":1}{\"b\":2}", "{\"a\":null!}",
	};
	struct members m = { .stop_at = 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = each(bad[i], &m);
		if (r != -1)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK_EQ(r, -1);
	}
}

static void test_flat_each_limits(void)
{
	char json[256], k63[64], k64[65];
	struct members m = { .stop_at = 0 };

	memset(k63, 'k', 63);
	k63[63] = 0;
	memset(k64, 'k', 64);
	k64[64] = 0;
	snprintf(json, sizeof(json), "{\"%s\":\"%s\",\"b\":%s}", k63, k63, k63);
	CHECK_EQ(each(json, &m), 0);
	CHECK_EQ(m.count, 2);
	snprintf(json, sizeof(json), "{\"%s\":1}", k64);		/* key of 64 bytes */
	CHECK_EQ(each(json, &m), -1);
	snprintf(json, sizeof(json), "{\"a\":\"%s\"}", k64);		/* string value of 64 */
	CHECK_EQ(each(json, &m), -1);
	snprintf(json, sizeof(json), "{\"a\":%s}", k64);		/* bare value of 64 */
	CHECK_EQ(each(json, &m), -1);
}

int main(void)
{
	RUN(test_writer);
	RUN(test_get_u64_valid);
	RUN(test_get_u64_invalid);
	RUN(test_get_u64_limits);
	RUN(test_get_str);
	RUN(test_flat_each_valid);
	RUN(test_flat_each_invalid);
	RUN(test_flat_each_limits);
	return check_done("json");
}
