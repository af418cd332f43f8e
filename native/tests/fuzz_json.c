/* Bounded, seeded fuzz of the request-payload JSON reader (json_get_u64, json_get_str,
 * json_flat_each). Three kinds of input: flat objects generated with known members (the
 * reader must return exactly those), the same objects mutated, and random bytes. Every input
 * is an exact-size heap copy without NUL, so ASan catches any read past it; whenever
 * json_flat_each accepts an input, the single-key readers must agree with what it saw. */
#include <inttypes.h>
#include <stdint.h>

#include "check.h"
#include "fuzz.h"
#include "json.h"

#define MAX_MEMBERS 8
#define TEXT_CAP    2048

struct member {
	char key[72];
	char value[72];
	int is_string;
};

struct object {
	struct member m[MAX_MEMBERS + 8];
	unsigned n;
};

static unsigned long accepted_mutants;

static void random_token(struct rng *r, char *out, unsigned len, const char *alphabet)
{
	size_t k = strlen(alphabet);

	for (unsigned i = 0; i < len; i++)
		out[i] = alphabet[rng_below(r, (uint32_t)k)];
	out[len] = 0;
}

static void random_value(struct rng *r, struct member *m)
{
	static const char printable[] = " !#$%&'()*+,-./0123456789:;<=>?@ABCXYZ[]^_`abcxyz{|}~";

	m->is_string = 0;
	switch (rng_below(r, 5)) {
	case 0:
		snprintf(m->value, sizeof(m->value), "%" PRIu64, rng_next(r) >> rng_below(r, 64));
		break;
	case 1:		/* near and beyond the top of the u64 range */
		snprintf(m->value, sizeof(m->value), "%" PRIu64, UINT64_MAX - rng_below(r, 20));
		break;
	case 2:
		random_token(r, m->value, 1 + rng_below(r, 63), "0123456789");
		break;
	case 3:
		random_token(r, m->value, 1 + rng_below(r, 63), "abcdefghijklmnopqrstuvwxyz0123456789");
		break;
	default:
		m->is_string = 1;
		random_token(r, m->value, rng_below(r, 64), printable);
		break;
	}
}

static void random_object(struct rng *r, struct object *o)
{
	o->n = rng_below(r, MAX_MEMBERS + 1);
	for (unsigned i = 0; i < o->n; i++) {
		/* unique keys: a random body and the member's index */
		unsigned body = rng_below(r, 60);
		random_token(r, o->m[i].key, body, "abcdefghijklmnopqrstuvwxyz0123456789._");
		snprintf(o->m[i].key + body, sizeof(o->m[i].key) - body, "%c", 'A' + i);
		random_value(r, &o->m[i]);
	}
}

static size_t put_ws(struct rng *r, char *out)
{
	static const char ws[] = " \t\n\r";
	size_t n = rng_percent(r, 70) ? 0 : 1 + rng_below(r, 3);

	for (size_t i = 0; i < n; i++)
		out[i] = ws[rng_below(r, 4)];
	return n;
}

static size_t serialize(struct rng *r, const struct object *o, char *out)
{
	size_t n = put_ws(r, out);

	out[n++] = '{';
	for (unsigned i = 0; i < o->n; i++) {
		n += put_ws(r, out + n);
		n += (size_t)sprintf(out + n, "\"%s\"", o->m[i].key);
		n += put_ws(r, out + n);
		out[n++] = ':';
		n += put_ws(r, out + n);
		n += (size_t)sprintf(out + n, o->m[i].is_string ? "\"%s\"" : "%s", o->m[i].value);
		n += put_ws(r, out + n);
		if (i + 1 < o->n)
			out[n++] = ',';
	}
	n += put_ws(r, out + n);
	out[n++] = '}';
	n += put_ws(r, out + n);
	return n;
}

static int record(void *opaque, const char *key, const char *value, int is_string)
{
	struct object *o = opaque;

	CHECK(strlen(key) <= 63 && strlen(value) <= 63 && (is_string == 0 || is_string == 1));
	if (o->n < MAX_MEMBERS + 8) {
		snprintf(o->m[o->n].key, sizeof(o->m[0].key), "%s", key);
		snprintf(o->m[o->n].value, sizeof(o->m[0].value), "%s", value);
		o->m[o->n].is_string = is_string;
	}
	o->n++;
	return 0;
}

/* What json_get_u64 must say about a bare value made of digits only: the number, unless it is
 * above 18446744073709551609 (the reader refuses the top of the range, see test_json.c). */
static int expected_u64(const char *digits, uint64_t *v)
{
	size_t n = strlen(digits), start = strspn(digits, "0");

	if (n - start > 20 || (n - start == 20 && strcmp(digits + start, "18446744073709551609") > 0))
		return -1;
	*v = strtoull(digits, NULL, 10);
	return 0;
}

static int first_with_key(const struct object *o, unsigned i)
{
	for (unsigned j = 0; j < i; j++)
		if (!strcmp(o->m[j].key, o->m[i].key))
			return 0;
	return 1;
}

/* For an input json_flat_each accepted with members o: the single-key readers agree. */
static void check_readers_agree(const uint8_t *p, size_t len, const struct object *o)
{
	for (unsigned i = 0; i < o->n && i < MAX_MEMBERS + 8; i++) {
		const struct member *m = &o->m[i];
		uint64_t got = 0, want = 0;
		char out[64];

		if (!first_with_key(o, i))
			continue;
		if (m->is_string) {
			CHECK_EQ(json_get_str((const char *)p, len, m->key, out, sizeof(out)), 0);
			CHECK_STR(out, m->value);
			CHECK_EQ(json_get_u64((const char *)p, len, m->key, &got), -1);
			if (*m->value)	/* one byte short of room for the NUL */
				CHECK_EQ(json_get_str((const char *)p, len, m->key, out, strlen(m->value)), -1);
		} else if (strspn(m->value, "0123456789") == strlen(m->value)) {
			int r = json_get_u64((const char *)p, len, m->key, &got);
			CHECK_EQ(r, expected_u64(m->value, &want));
			if (r == 0)
				CHECK_EQ(got, want);
		} else if (m->value[0] >= 'a') {
			CHECK_EQ(json_get_u64((const char *)p, len, m->key, &got), -1);
		}
	}
	CHECK_EQ(json_get_u64((const char *)p, len, "no-such-key", &(uint64_t){ 0 }), -1);
}

/* Any input: no crash, and outputs stay in bounds. */
static void poke(struct rng *r, const uint8_t *p, size_t len, const struct object *keys)
{
	struct object seen = { .n = 0 };
	char out[80];
	uint64_t v;

	if (json_flat_each((const char *)p, len, record, &seen) == 0) {
		accepted_mutants++;
		check_readers_agree(p, len, &seen);
	}
	for (unsigned i = 0; i < 3; i++) {
		const char *key = keys->n ? keys->m[rng_below(r, keys->n)].key : "a";
		size_t outlen = rng_below(r, sizeof(out));
		json_get_u64((const char *)p, len, key, &v);
		memset(out, 'x', sizeof(out));
		if (json_get_str((const char *)p, len, key, out, outlen) == 0)
			CHECK(memchr(out, 0, outlen) != NULL);
	}
}

static void generated(struct rng *r, char *text)
{
	struct object o, seen = { .n = 0 };
	size_t n;
	uint8_t *p;

	random_object(r, &o);
	n = serialize(r, &o, text);
	p = exact_copy(text, n);
	CHECK_EQ(json_flat_each((const char *)p, n, record, &seen), 0);
	CHECK_EQ(seen.n, o.n);
	for (unsigned i = 0; i < o.n && i < seen.n; i++) {
		CHECK_STR(seen.m[i].key, o.m[i].key);
		CHECK_STR(seen.m[i].value, o.m[i].value);
		CHECK_EQ(seen.m[i].is_string, o.m[i].is_string);
	}
	check_readers_agree(p, n, &o);
	free(p);

	mutate(r, (uint8_t *)text, &n, TEXT_CAP);
	p = exact_copy(text, n);
	poke(r, p, n, &o);
	free(p);
}

static void random_bytes(struct rng *r, char *text)
{
	struct object none = { .n = 0 };
	size_t n = rng_below(r, 300);
	uint8_t *p;

	for (size_t i = 0; i < n; i++)
		text[i] = (char)(rng_percent(r, 80) ? rng_interesting(r) : rng_below(r, 256));
	p = exact_copy(text, n);
	poke(r, p, n, &none);
	free(p);
}

int main(int argc, char **argv)
{
	unsigned long iterations = 100000;
	uint64_t seed = 1;
	static char text[TEXT_CAP + 64];
	struct rng r;

	fuzz_args(argc, argv, &iterations, &seed);
	r.state = seed;
	check_case = "fuzz_json";
	for (unsigned long i = 0; i < iterations && !check_failures; i++) {
		if (rng_percent(&r, 85))
			generated(&r, text);
		else
			random_bytes(&r, text);
	}
	printf("fuzz_json: %lu iterations, seed %" PRIu64 ", %lu mutants accepted\n", iterations,
	       seed, accepted_mutants);
	return check_done("fuzz_json");
}
