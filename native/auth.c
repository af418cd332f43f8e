/* Loading and checking the control socket's secret. The file is read before the VM is built,
 * so a helper that cannot be authenticated to never starts. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int auth_load(const char *path, struct auth_secret *out, char *err, size_t errlen)
{
	char buf[PROTO_SECRET_HEX + 2];
	struct stat st;
	ssize_t n;
	int fd;

	memset(out, 0, sizeof(*out));
	/* O_NOFOLLOW: the file the agent wrote, not whatever a symlink in its place points to. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "secret file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "secret file %s is not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "secret file %s has mode %04o: group and others must have no access "
			 "(chmod 600)", path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n == PROTO_SECRET_HEX + 1 && buf[PROTO_SECRET_HEX] == '\n')
		n--;
	if (n != PROTO_SECRET_HEX) {
		snprintf(err, errlen, "secret file %s must hold exactly %d hex digits", path,
			 PROTO_SECRET_HEX);
		return -1;
	}
	for (int i = 0; i < PROTO_SECRET_HEX; i++) {
		if (!is_lower_hex(buf[i])) {
			snprintf(err, errlen, "secret file %s must hold exactly %d lowercase hex digits",
				 path, PROTO_SECRET_HEX);
			return -1;
		}
	}
	memcpy(out->hex, buf, PROTO_SECRET_HEX);
	out->hex[PROTO_SECRET_HEX] = 0;
	return 0;
}

int auth_equal(const struct auth_secret *secret, const char *given, size_t len)
{
	volatile unsigned char diff = len != PROTO_SECRET_HEX;

	/* Always PROTO_SECRET_HEX steps; a shorter guess is compared against zeros. */
	for (size_t i = 0; i < PROTO_SECRET_HEX; i++)
		diff |= (unsigned char)secret->hex[i] ^ (unsigned char)(i < len ? given[i] : 0);
	return diff == 0;
}

int auth_check_hello(const struct auth_secret *secret, const struct proto_header *h,
		     const uint8_t *payload, struct request_error *e)
{
	struct request_limits lim = { .nr_vcpus = 1 };	/* HELLO has no vCPU fields */
	struct request r;

	if (request_check_flags(h, e) < 0)
		return -1;
	if (h->type != PROTO_HELLO) {
		e->code = PROTO_E_NO_HELLO;
		snprintf(e->message, sizeof(e->message), "send HELLO with the VM's secret first");
		return -1;
	}
	if (request_parse(h, payload, &lim, &r, e) < 0)
		return -1;
	if (!auth_equal(secret, r.u.hello.secret, strlen(r.u.hello.secret))) {
		e->code = PROTO_E_AUTH;
		snprintf(e->message, sizeof(e->message), "wrong secret: this connection is refused");
		return -1;
	}
	return 0;
}
