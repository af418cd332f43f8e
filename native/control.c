/* Control socket: the controlling connection, the event pump and the poll loop. New connections
 * wait in control_pending.c until they authenticate (auth.c); framing is in framing.c, payload
 * checks in request.c, request handlers in control_ops.c. */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control_ops.h"
#include "events.h"
#include "framing.h"
#include "json.h"
#include "serial.h"
#include "util.h"
#include "vcpu.h"

/* Output to the controlling client is bounded. Above OUT_HIGH_WATER the helper streams no console
 * output and reads no further requests (so a client pipelining requests gets flow control, not a
 * drop); one reply and a few events may still land on top, up to OUT_LIMIT. A client that lets the
 * backlog reach OUT_LIMIT, or sends nothing out of it for OUT_STALL_NS, is not reading: it is
 * closed and logged, and an agent connects again with the secret. */
#define OUT_HIGH_WATER (8u << 20)
#define OUT_LIMIT      (OUT_HIGH_WATER + 2u * (PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD))
#define OUT_STALL_NS   5000000000ull
#define CONSOLE_CHUNK  (64u << 10)
#define CONSOLE_LINGER_NS 1000000ull	/* batch console bytes: at most one event per ms... */
#define CONSOLE_BATCH     4096u		/* ...unless this much is waiting */

/* The socket is bound under a temporary name (path + "~") and renamed to path once it listens
 * and has its mode, so that whoever sees path can connect: no ECONNREFUSED in the moment between
 * bind() and listen(). A path one byte short of the limit leaves no room for the "~" and is
 * bound directly. */
int control_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int fd, staged = len + 1 < sizeof(addr.sun_path);
	struct stat st;

	if (len >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "control socket path too long (max %zu): %s",
			 sizeof(addr.sun_path) - 1, path);
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control socket %s: %s", path, strerror(EADDRINUSE));
			return -1;
		}
		unlink(path);	/* a stale socket from an earlier helper */
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s%s", path, staged ? "~" : "");
	if (staged && lstat(addr.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(addr.sun_path);	/* left by a helper that died while starting */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	chmod(addr.sun_path, 0600);
	if (listen(fd, 4) < 0 || (staged && rename(addr.sun_path, path) < 0)) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		close(fd);
		unlink(addr.sun_path);
		return -1;
	}
	return fd;
}

/* The output buffer is allocated whole (OUT_LIMIT) when the client attaches: it never grows, so
 * no realloc (whose mremap the sandbox does not allow) and no copy; pages never used cost nothing. */
static void out_append(struct client *c, const void *data, size_t len)
{
	if (c->out_off + c->out_len + len > c->out_cap) {
		memmove(c->out, c->out + c->out_off, c->out_len);	/* room at the front */
		c->out_off = 0;
	}
	if (c->out_len + len > c->out_cap) {
		log_error("client output over its bound; dropping the client");
		c->dead = 1;
		return;
	}
	memcpy(c->out + c->out_off + c->out_len, data, len);
	c->out_len += len;
}

void client_send(struct client *c, uint16_t type, uint16_t flags, uint32_t id, const void *payload,
		 size_t len)
{
	struct proto_header h = { (uint32_t)len, type, flags, id };

	if (c->fd < 0 || c->dead)
		return;
	if (c->out_len + sizeof(h) + len > OUT_LIMIT) {
		log_error("the controlling client does not read: %zu bytes of replies and events wait "
			  "(limit %u); closing its connection", c->out_len, OUT_LIMIT);
		c->dead = 1;
		return;
	}
	out_append(c, &h, sizeof(h));
	if (len)
		out_append(c, payload, len);
}

static const char *error_name(unsigned code)
{
	static const char *const names[] = {
		"OK", "BAD_MESSAGE", "UNKNOWN_TYPE", "INVALID_ARGUMENT", "WRONG_STATE",
		"OUT_OF_RANGE", "TOO_LARGE", "NO_HELLO", "VERSION", "INTERNAL", "TIMEOUT", "AUTH",
	};
	return code < ARRAY_SIZE(names) ? names[code] : "UNKNOWN";
}

void client_error(struct client *c, uint16_t type, uint32_t id, unsigned code, const char *fmt, ...)
{
	char msg[512];
	struct sbuf sb;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sb_init(&sb);
	sb_printf(&sb, "{\"code\":%u,\"name\":\"%s\",\"message\":", code, error_name(code));
	sb_json_str(&sb, msg);
	sb_printf(&sb, "}");
	client_send(c, type, PROTO_F_REPLY | PROTO_F_ERROR, id, sb.data, sb.len);
	sb_free(&sb);
}

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void flush_out(struct client *c)
{
	size_t done = 0;

	while (done < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off + done, c->out_len - done,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->dead = 1;
			break;
		}
		done += (size_t)n;
	}
	/* What was sent is skipped, not moved: out_append compacts only when the tail is full. */
	c->out_off = c->out_len == done ? 0 : c->out_off + done;
	c->out_len -= done;
	if (done || c->out_len < OUT_HIGH_WATER)
		c->stalled_since_ns = c->out_len >= OUT_HIGH_WATER ? now_ns() : 0;
	else if (!c->stalled_since_ns)
		c->stalled_since_ns = now_ns();
}

/* A client whose backlog sat at the high water with nothing sent for OUT_STALL_NS. */
static int client_stalled(const struct client *c)
{
	return c->stalled_since_ns && now_ns() - c->stalled_since_ns >= OUT_STALL_NS;
}

/* Requests are read only while the backlog is under the high water (flow control). */
static int client_readable(const struct client *c)
{
	return c->out_len < OUT_HIGH_WATER;
}

/* Console bytes written since the client's cursor, as CONSOLE events. */
static void pump_console(struct server *s)
{
	struct client *c = &s->client;
	uint8_t buf[CONSOLE_CHUNK];
	uint64_t lost;
	size_t n;

	while (c->fd >= 0 && c->hello && c->out_len < OUT_HIGH_WATER) {
		n = ring_read(&s->vm->serial->out, &c->console_pos, buf, sizeof(buf), &lost);
		if (!n)
			break;
		client_send(c, PROTO_EV_CONSOLE, PROTO_F_EVENT | (lost ? PROTO_F_TRUNCATED : 0),
			    ++s->event_seq, buf, n);
	}
}

/* Console bytes are pending but held back to batch them; returns the ms to wait, or -1. */
static int console_wait_ms(struct server *s)
{
	struct client *c = &s->client;
	uint64_t head, now;

	if (c->fd < 0 || !c->hello)
		return -1;
	head = ring_head(&s->vm->serial->out);
	if (head <= c->console_pos)
		return -1;
	now = now_ns();
	if (head - c->console_pos >= CONSOLE_BATCH || now >= s->console_sent_ns + CONSOLE_LINGER_NS)
		return 0;
	return 1;
}

static void pump_events(struct server *s)
{
	struct event *list = events_take(s->vm->events), *e;

	for (e = list; e; e = e->next) {
		if (s->client.fd >= 0 && s->client.hello)
			client_send(&s->client, e->type, PROTO_F_EVENT, ++s->event_seq, e->json,
				    strlen(e->json));
	}
	events_free(list);
	if (console_wait_ms(s) == 0) {
		pump_console(s);
		s->console_sent_ns = now_ns();
	}
}

/* New connections wait in the pending set until they authenticate (control_pending.c). */
static void accept_clients(struct server *s, int listen_fd)
{
	for (int i = 0; i < 16; i++) {	/* bounded: the loop must get back to the VM's events */
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		pending_add(&s->pending, fd);
	}
}

/* An authenticated connection becomes the controlling one; the HELLO it sent is answered there. */
static void promote(struct server *s, int fd, const struct proto_header *h, const uint8_t *hello)
{
	if (s->client.fd >= 0) {
		/* Told, so that it does not connect again and take control back (two agents would
		 * otherwise take turns for ever). */
		static const char why[] = "{\"reason\":\"another client with the VM's secret took control\"}";
		log_info("an authenticated client replaces the attached one");
		if (s->client.hello)
			client_send(&s->client, PROTO_EV_REPLACED, PROTO_F_EVENT, ++s->event_seq, why,
				    sizeof(why) - 1);
		flush_out(&s->client);
		client_close(&s->client);
	}
	s->client.fd = fd;
	s->client.in = malloc(PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD);
	s->client.out = malloc(OUT_LIMIT);
	s->client.out_cap = s->client.out ? OUT_LIMIT : 0;
	if (!s->client.in || !s->client.out) {
		log_error("out of memory for a client; closing it");
		client_close(&s->client);
		return;
	}
	s->client.console_pos = ring_head(&s->vm->serial->out);
	log_info("client authenticated and attached");
	control_handle(s, h, hello);
}

static void read_pending(struct server *s, int i)
{
	uint8_t hello[PROTO_HELLO_MAX];
	struct proto_header h;
	int fd = pending_read(&s->pending, i, s->secret, &h, hello);

	if (fd >= 0)
		promote(s, fd, &h, hello);
}

/* Reads what is there and handles every complete message, while the backlog allows; a hangup is
 * read regardless, to see the end of the stream. */
static void read_client(struct server *s, int hup)
{
	struct client *c = &s->client;
	struct proto_header h;
	size_t want;

	for (;;) {
		if (!client_readable(c) && !hup)
			return;
		switch (frame_check(c->in, c->in_len, &h, &want)) {
		case FRAME_TOO_LARGE:
			client_error(c, h.type, h.id, PROTO_E_TOO_LARGE,
				     "message length %u exceeds the maximum %u; closing the connection",
				     h.length, PROTO_MAX_PAYLOAD);
			c->closing = 1;
			return;
		case FRAME_COMPLETE:
			c->in_len = 0;
			control_handle(s, &h, c->in + PROTO_HEADER_SIZE);
			if (c->dead || c->closing || s->exit_status >= 0)
				return;
			continue;
		case FRAME_INCOMPLETE:
			break;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, want, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			c->dead = 1;
			return;
		}
		if (n < 0)
			return;
		c->in_len += (size_t)n;
	}
}

static int setup_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void final_flush(struct client *c)
{
	uint64_t deadline = now_ns() + 2000000000ull;

	while (c->fd >= 0 && c->out_len && !c->dead && now_ns() < deadline) {
		struct pollfd p = { c->fd, POLLOUT, 0 };
		poll(&p, 1, 100);
		flush_out(c);
	}
}

int control_run(struct vm *vm, int listen_fd, const struct auth_secret *secret)
{
	struct server s = { .vm = vm, .exit_status = -1, .client = { .fd = -1 }, .started_ns = now_ns(),
			    .secret = secret };
	int sig_fd = setup_signals();

	pending_init(&s.pending);
	while (s.exit_status < 0) {
		enum { P_LISTEN, P_EVENTS, P_SIGNAL, P_CLIENT, P_PENDING };
		struct pollfd p[P_PENDING + PROTO_MAX_PENDING] = {
			[P_LISTEN] = { listen_fd, POLLIN, 0 },
			[P_EVENTS] = { events_fd(vm->events), POLLIN, 0 },
			[P_SIGNAL] = { sig_fd, POLLIN, 0 },
			[P_CLIENT] = { s.client.fd, (short)((client_readable(&s.client) ? POLLIN : 0) |
							    (s.client.out_len ? POLLOUT : 0)), 0 },
		};
		int timeout = -1, pending_ms;

		/* A free slot's fd is -1, which poll() skips. */
		for (int i = 0; i < PROTO_MAX_PENDING; i++)
			p[P_PENDING + i] = (struct pollfd){ s.pending.slot[i].fd, POLLIN, 0 };
		if (s.client.closing)
			p[P_CLIENT].events = POLLOUT;
		if (s.stop.active) {
			uint64_t now = now_ns();
			timeout = now >= s.stop.deadline_ns ? 0
				: (int)MIN((s.stop.deadline_ns - now) / 1000000 + 1, 1000);
		}
		if (console_wait_ms(&s) >= 0 && (timeout < 0 || timeout > 1))
			timeout = 1;	/* batched console output is due within a millisecond */
		if (s.client.stalled_since_ns && (timeout < 0 || timeout > 1000))
			timeout = 1000;	/* to notice a client that stays stalled */
		pending_ms = pending_timeout_ms(&s.pending);
		if (pending_ms >= 0 && (timeout < 0 || timeout > pending_ms))
			timeout = pending_ms;
		if (poll(p, ARRAY_SIZE(p), timeout) < 0 && errno != EINTR)
			break;
		if (p[P_SIGNAL].revents & POLLIN) {
			struct signalfd_siginfo si;
			(void)!read(sig_fd, &si, sizeof(si));
			log_info("signal %u: stopping the VM by force", si.ssi_signo);
			control_stop_now(&s, 1);
			break;
		}
		if (p[P_EVENTS].revents & POLLIN)
			pump_events(&s);
		for (int i = 0; i < PROTO_MAX_PENDING; i++)
			if (p[P_PENDING + i].fd >= 0 && p[P_PENDING + i].fd == s.pending.slot[i].fd &&
			    (p[P_PENDING + i].revents & (POLLIN | POLLHUP | POLLERR)))
				read_pending(&s, i);
		pending_expire(&s.pending);
		if (p[P_LISTEN].revents & POLLIN)
			accept_clients(&s, listen_fd);
		if (s.client.fd >= 0 && s.client.fd == p[P_CLIENT].fd && !s.client.closing &&
		    (p[P_CLIENT].revents & (POLLIN | POLLHUP)))
			read_client(&s, !!(p[P_CLIENT].revents & POLLHUP));
		if (s.stop.active)
			control_stop_progress(&s);
		pump_events(&s);
		if (s.client.fd >= 0)
			flush_out(&s.client);
		if (s.client.fd >= 0 && !s.client.dead && client_stalled(&s.client)) {
			log_error("the controlling client has read nothing for %llu s with %zu bytes waiting; "
				  "closing its connection", OUT_STALL_NS / 1000000000ull, s.client.out_len);
			s.client.dead = 1;
		}
		if (s.client.fd >= 0 && (s.client.dead || (s.client.closing && !s.client.out_len) ||
					 (s.client.fd == p[P_CLIENT].fd &&
					  (p[P_CLIENT].revents & (POLLERR | POLLNVAL))))) {
			log_info("client detached");
			client_close(&s.client);
		}
	}
	pending_close_all(&s.pending);
	pump_events(&s);
	pump_console(&s);
	final_flush(&s.client);
	client_close(&s.client);
	if (sig_fd >= 0)
		close(sig_fd);
	return s.exit_status < 0 ? EXIT_INTERNAL : s.exit_status;
}
