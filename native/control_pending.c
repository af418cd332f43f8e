/* Pending control connections: read one bounded HELLO, check its secret, refuse anything else. */
#include "control_pending.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"
#include "util.h"

#define REFUSAL_LOG_BURST 5
#define NS_PER_MS 1000000ull

void pending_init(struct pending_set *ps)
{
	memset(ps, 0, sizeof(*ps));
	for (size_t i = 0; i < ARRAY_SIZE(ps->slot); i++)
		ps->slot[i].fd = -1;
}

static void log_refusal(struct pending_set *ps, const struct pending_conn *p, const char *why)
{
	struct refusal_log *l = &ps->log;
	uint64_t now = now_ns();

	ps->refused++;
	if (now - l->window_ns >= 1000 * NS_PER_MS) {
		if (l->suppressed)
			log_warn("%u more control connections refused in the last second (not logged)",
				 l->suppressed);
		l->window_ns = now;
		l->logged = l->suppressed = 0;
	}
	if (l->logged >= REFUSAL_LOG_BURST) {
		l->suppressed++;
		return;
	}
	l->logged++;
	log_warn("control connection from pid %d uid %u refused: %s (the VM and the attached client "
		 "are unaffected)", (int)p->pid, (unsigned)p->uid, why);
}

/* Best effort: a refused peer learns why, if its socket takes the bytes at once. */
static void send_refusal(int fd, const struct proto_header *h, unsigned code, const char *name,
			 const char *message)
{
	struct proto_header out = { 0, h ? h->type : PROTO_HELLO,
				    PROTO_F_REPLY | PROTO_F_ERROR, h ? h->id : 0 };
	struct sbuf sb;

	sb_init(&sb);
	sb_printf(&sb, "{\"code\":%u,\"name\":\"%s\",\"message\":", code, name);
	sb_json_str(&sb, message);
	sb_printf(&sb, "}");
	if (!sb.oom) {
		uint8_t buf[sizeof(out) + 512];
		out.length = (uint32_t)MIN(sb.len, sizeof(buf) - sizeof(out));
		memcpy(buf, &out, sizeof(out));
		memcpy(buf + sizeof(out), sb.data, out.length);
		(void)!send(fd, buf, sizeof(out) + out.length, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	sb_free(&sb);
}

static void slot_close(struct pending_conn *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->in_len = 0;
}

static const char *code_name(unsigned code)
{
	switch (code) {
	case PROTO_E_NO_HELLO: return "NO_HELLO";
	case PROTO_E_VERSION: return "VERSION";
	case PROTO_E_TOO_LARGE: return "TOO_LARGE";
	case PROTO_E_AUTH: return "AUTH";
	default: return "BAD_MESSAGE";
	}
}

static void refuse(struct pending_set *ps, struct pending_conn *p, const struct proto_header *h,
		   unsigned code, const char *why)
{
	log_refusal(ps, p, why);
	send_refusal(p->fd, h, code, code_name(code), why);
	slot_close(p);
}

void pending_add(struct pending_set *ps, int fd)
{
	struct pending_conn *p = NULL, *oldest = &ps->slot[0];
	struct ucred cred = { 0, (uid_t)-1, (gid_t)-1 };
	socklen_t len = sizeof(cred);

	for (size_t i = 0; i < ARRAY_SIZE(ps->slot); i++) {
		if (ps->slot[i].fd < 0) {
			p = &ps->slot[i];
			break;
		}
		if (ps->slot[i].deadline_ns < oldest->deadline_ns)
			oldest = &ps->slot[i];
	}
	if (!p) {
		refuse(ps, oldest, NULL, PROTO_E_AUTH,
		       "too many connections waiting to authenticate; the oldest is dropped");
		p = oldest;
	}
	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
	p->fd = fd;
	p->pid = cred.pid;
	p->uid = cred.uid;
	p->in_len = 0;
	p->deadline_ns = now_ns() + PROTO_AUTH_TIMEOUT_MS * NS_PER_MS;
}

int pending_timeout_ms(const struct pending_set *ps)
{
	uint64_t now = now_ns(), next = UINT64_MAX;

	for (size_t i = 0; i < ARRAY_SIZE(ps->slot); i++)
		if (ps->slot[i].fd >= 0 && ps->slot[i].deadline_ns < next)
			next = ps->slot[i].deadline_ns;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)((next - now) / NS_PER_MS + 1);
}

void pending_expire(struct pending_set *ps)
{
	uint64_t now = now_ns();

	for (size_t i = 0; i < ARRAY_SIZE(ps->slot); i++) {
		struct pending_conn *p = &ps->slot[i];
		if (p->fd >= 0 && now >= p->deadline_ns)
			refuse(ps, p, NULL, PROTO_E_AUTH, "no HELLO with the secret within the time allowed");
	}
}

int pending_read(struct pending_set *ps, int i, const struct auth_secret *secret,
		 struct proto_header *h, uint8_t *hello)
{
	struct pending_conn *p = &ps->slot[i];
	struct request_error e;
	size_t want;
	ssize_t n;
	int fd;

	if (p->fd < 0)
		return -1;
	for (;;) {
		if (p->in_len >= PROTO_HEADER_SIZE) {
			memcpy(h, p->in, sizeof(*h));
			/* Checked before the payload is read: nothing but a small HELLO is buffered. */
			if (h->type != PROTO_HELLO) {
				refuse(ps, p, h, PROTO_E_NO_HELLO, "the first message is not a HELLO");
				return -1;
			}
			if (h->length > PROTO_HELLO_MAX) {
				refuse(ps, p, h, PROTO_E_TOO_LARGE, "HELLO too large");
				return -1;
			}
			want = PROTO_HEADER_SIZE + h->length - p->in_len;
		} else {
			want = PROTO_HEADER_SIZE - p->in_len;
		}
		if (!want)
			break;
		n = recv(p->fd, p->in + p->in_len, want, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return -1;
		if (n <= 0) {
			log_refusal(ps, p, "closed before authenticating");
			slot_close(p);
			return -1;
		}
		p->in_len += (size_t)n;
	}
	if (auth_check_hello(secret, h, p->in + PROTO_HEADER_SIZE, &e) < 0) {
		refuse(ps, p, h, e.code, e.message);
		return -1;
	}
	memcpy(hello, p->in + PROTO_HEADER_SIZE, h->length);
	fd = p->fd;
	p->fd = -1;
	p->in_len = 0;
	return fd;
}

void pending_close_all(struct pending_set *ps)
{
	for (size_t i = 0; i < ARRAY_SIZE(ps->slot); i++)
		slot_close(&ps->slot[i]);
}
