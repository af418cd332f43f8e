/* Pending control connections over socketpairs (no KVM): a valid HELLO with the secret is handed
 * over, with any bytes after it left unread; everything else is refused with one error reply and
 * closed; a full set refuses its oldest; a connection whose time is up is closed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "control_pending.h"
#include "util.h"

#define GOOD "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static struct auth_secret secret = { GOOD };

/* A new pending connection; returns the peer's end. */
static int connect_one(struct pending_set *ps)
{
	int sv[2];

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pending_add(ps, sv[0]);
	return sv[1];
}

static int slot_of(const struct pending_set *ps, int n)
{
	int used = -1;

	for (int i = 0; i < PROTO_MAX_PENDING; i++)
		if (ps->slot[i].fd >= 0 && ++used == n)
			return i;
	return -1;
}

static int pending_count(const struct pending_set *ps)
{
	int n = 0;

	for (int i = 0; i < PROTO_MAX_PENDING; i++)
		n += ps->slot[i].fd >= 0;
	return n;
}

static void send_msg(int peer, uint16_t type, const char *payload)
{
	struct proto_header h = { (uint32_t)strlen(payload), type, 0, 7 };

	CHECK_EQ(write(peer, &h, sizeof(h)), sizeof(h));
	if (h.length)
		CHECK_EQ(write(peer, payload, h.length), h.length);
}

/* The error name in the one reply the peer got, then the end of the connection; "" if none. */
static const char *refusal(int peer)
{
	static char buf[1024];
	struct proto_header h;
	char *name, probe;
	ssize_t n = recv(peer, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	if (n < (ssize_t)sizeof(h))
		return "";
	buf[n] = 0;
	memcpy(&h, buf, sizeof(h));
	CHECK(h.flags & PROTO_F_ERROR);
	/* Closed: EOF, or a reset when the helper closed with bytes of ours unread. */
	n = recv(peer, &probe, 1, MSG_DONTWAIT);
	CHECK(n == 0 || (n < 0 && errno == ECONNRESET));
	name = strstr(buf + sizeof(h), "\"name\":\"");
	if (!name)
		return "?";
	name += 8;
	*strchr(name, '"') = 0;
	return name;
}

static void test_accepts_the_secret(void)
{
	struct pending_set ps;
	struct proto_header h;
	uint8_t hello[PROTO_HELLO_MAX];
	char json[200], rest[8];
	int peer, fd;

	check_case = "accepts";
	pending_init(&ps);
	peer = connect_one(&ps);
	snprintf(json, sizeof(json), "{\"version\":%d,\"secret\":\"%s\"}", PROTO_VERSION, GOOD);
	/* Sent in two pieces: the first read has only part of the header. */
	{
		struct proto_header out = { (uint32_t)strlen(json), PROTO_HELLO, 0, 7 };
		CHECK_EQ(write(peer, &out, 5), 5);
		CHECK_EQ(pending_read(&ps, slot_of(&ps, 0), &secret, &h, hello), -1);
		CHECK_EQ(pending_count(&ps), 1);
		CHECK_EQ(write(peer, (uint8_t *)&out + 5, sizeof(out) - 5), sizeof(out) - 5);
		CHECK_EQ(write(peer, json, out.length), out.length);
	}
	CHECK_EQ(write(peer, "next", 4), 4);	/* a request pipelined after HELLO */
	fd = pending_read(&ps, slot_of(&ps, 0), &secret, &h, hello);
	CHECK(fd >= 0);
	CHECK_EQ(h.type, PROTO_HELLO);
	CHECK_EQ(h.id, 7);
	CHECK_EQ(memcmp(hello, json, h.length), 0);
	CHECK_EQ(pending_count(&ps), 0);
	CHECK_EQ(ps.refused, 0);
	CHECK_EQ(recv(fd, rest, sizeof(rest), MSG_DONTWAIT), 4);	/* left for the controller */
	close(fd);
	close(peer);
}

static void test_refuses(void)
{
	static const struct {
		const char *what, *payload, *name;
		uint16_t type;
	} cases[] = {
		{ "wrong secret", "{\"version\":2,\"secret\":\"1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}", "AUTH", PROTO_HELLO },
		{ "no secret", "{\"version\":2}", "AUTH", PROTO_HELLO },
		{ "version 1", "{\"version\":1}", "VERSION", PROTO_HELLO },
		{ "not JSON", "hello", "BAD_MESSAGE", PROTO_HELLO },
		{ "STATUS first", "", "NO_HELLO", PROTO_STATUS },
		{ "STOP first", "{\"timeoutMs\":0}", "NO_HELLO", PROTO_STOP },
	};
	struct pending_set ps;
	struct proto_header h;
	uint8_t hello[PROTO_HELLO_MAX];

	pending_init(&ps);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int peer = connect_one(&ps);
		check_case = cases[i].what;
		send_msg(peer, cases[i].type, cases[i].payload);
		CHECK_EQ(pending_read(&ps, slot_of(&ps, 0), &secret, &h, hello), -1);
		CHECK_EQ(pending_count(&ps), 0);
		CHECK_STR(refusal(peer), cases[i].name);
		close(peer);
	}
	/* A HELLO header announcing more than PROTO_HELLO_MAX: refused before its payload is read. */
	check_case = "too large";
	{
		int peer = connect_one(&ps);
		struct proto_header out = { PROTO_HELLO_MAX + 1, PROTO_HELLO, 0, 1 };
		CHECK_EQ(write(peer, &out, sizeof(out)), sizeof(out));
		CHECK_EQ(pending_read(&ps, slot_of(&ps, 0), &secret, &h, hello), -1);
		CHECK_STR(refusal(peer), "TOO_LARGE");
		close(peer);
	}
	check_case = "hang-up";
	{
		int peer = connect_one(&ps);
		close(peer);
		CHECK_EQ(pending_read(&ps, slot_of(&ps, 0), &secret, &h, hello), -1);
		CHECK_EQ(pending_count(&ps), 0);
	}
	CHECK_EQ(ps.refused, ARRAY_SIZE(cases) + 2);
}

static void test_full_and_expired(void)
{
	struct pending_set ps;
	int peers[PROTO_MAX_PENDING + 1];

	check_case = "full";
	pending_init(&ps);
	CHECK_EQ(pending_timeout_ms(&ps), -1);
	for (int i = 0; i < PROTO_MAX_PENDING; i++) {
		peers[i] = connect_one(&ps);
		ps.slot[slot_of(&ps, i)].deadline_ns -= (uint64_t)(PROTO_MAX_PENDING - i);	/* 0 oldest */
	}
	CHECK(pending_timeout_ms(&ps) > 0 && pending_timeout_ms(&ps) <= PROTO_AUTH_TIMEOUT_MS + 1);
	peers[PROTO_MAX_PENDING] = connect_one(&ps);
	CHECK_EQ(pending_count(&ps), PROTO_MAX_PENDING);
	CHECK_STR(refusal(peers[0]), "AUTH");	/* the oldest made room */
	for (int i = 1; i <= PROTO_MAX_PENDING; i++)
		CHECK(recv(peers[i], &(char){ 0 }, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN);

	check_case = "expired";
	ps.slot[slot_of(&ps, 0)].deadline_ns = 0;
	CHECK_EQ(pending_timeout_ms(&ps), 0);
	pending_expire(&ps);
	CHECK_EQ(pending_count(&ps), PROTO_MAX_PENDING - 1);
	pending_close_all(&ps);
	CHECK_EQ(pending_count(&ps), 0);
	for (int i = 0; i <= PROTO_MAX_PENDING; i++)
		close(peers[i]);
}

int main(void)
{
	test_accepts_the_secret();
	test_refuses();
	test_full_and_expired();
	return check_done("test_pending");
}
