/* The control socket's secret: what auth_load accepts and refuses (missing, not a regular file,
 * group/other access, wrong length, not lowercase hex), the constant-time compare, and the HELLO
 * check a pending connection must pass. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "check.h"

#define GOOD "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char dir[] = "/tmp/qvmm-test-auth-XXXXXX";

static const char *write_file(const char *name, const char *content, mode_t mode)
{
	static char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, content, strlen(content)), strlen(content));
	close(fd);
	chmod(path, mode);
	return path;
}

static int load(const char *path, char *err)
{
	struct auth_secret s;

	err[0] = 0;
	return auth_load(path, &s, err, 256);
}

static void test_load(void)
{
	struct auth_secret s;
	char err[256], path[256];

	check_case = "load";
	CHECK_EQ(auth_load(write_file("ok", GOOD, 0600), &s, err, sizeof(err)), 0);
	CHECK_STR(s.hex, GOOD);
	CHECK_EQ(load(write_file("nl", GOOD "\n", 0400), err), 0);

	snprintf(path, sizeof(path), "%s/missing", dir);
	CHECK_EQ(load(path, err), -1);
	CHECK(strstr(err, "No such file") != NULL);
	CHECK_EQ(load(dir, err), -1);
	CHECK(strstr(err, "not a regular file") != NULL);
	CHECK_EQ(load(write_file("group", GOOD, 0640), err), -1);
	CHECK(strstr(err, "mode 0640") != NULL && strstr(err, "chmod 600") != NULL);
	CHECK_EQ(load(write_file("other", GOOD, 0604), err), -1);
	CHECK_EQ(load(write_file("short", "abcd", 0600), err), -1);
	CHECK(strstr(err, "64 hex digits") != NULL);
	CHECK_EQ(load(write_file("long", GOOD "0", 0600), err), -1);
	CHECK_EQ(load(write_file("upper", "A123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0600), err), -1);
	CHECK(strstr(err, "lowercase") != NULL);
	CHECK_EQ(load(write_file("empty", "", 0600), err), -1);
	/* A symlink is not followed, even to a good file. */
	write_file("ok", GOOD, 0600);
	snprintf(path, sizeof(path), "%s/link", dir);
	unlink(path);
	{
		char target[256];
		snprintf(target, sizeof(target), "%s/ok", dir);
		CHECK_EQ(symlink(target, path), 0);
	}
	CHECK_EQ(load(path, err), -1);
}

static void test_equal(void)
{
	struct auth_secret s;

	check_case = "equal";
	memcpy(s.hex, GOOD, sizeof(s.hex));
	CHECK(auth_equal(&s, GOOD, 64));
	CHECK(!auth_equal(&s, GOOD, 63));
	CHECK(!auth_equal(&s, "", 0));
	CHECK(!auth_equal(&s, "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 64));
	CHECK(!auth_equal(&s, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdee", 64));
}

static int hello(const struct auth_secret *s, uint16_t type, uint16_t flags, const char *json,
		 unsigned *code)
{
	struct proto_header h = { (uint32_t)strlen(json), type, flags, 1 };
	struct request_error e = { 0, "" };
	int rc = auth_check_hello(s, &h, (const uint8_t *)json, &e);

	*code = e.code;
	if (rc < 0)
		CHECK(e.message[0] != 0);
	return rc;
}

static void test_hello(void)
{
	struct auth_secret s;
	char json[512];
	unsigned code;

	check_case = "hello";
	memcpy(s.hex, GOOD, sizeof(s.hex));
	snprintf(json, sizeof(json), "{\"version\":%d,\"secret\":\"%s\"}", PROTO_VERSION, GOOD);
	CHECK_EQ(hello(&s, PROTO_HELLO, 0, json, &code), 0);
	CHECK_EQ(hello(&s, PROTO_STATUS, 0, json, &code), -1);
	CHECK_EQ(code, PROTO_E_NO_HELLO);
	CHECK_EQ(hello(&s, PROTO_HELLO, PROTO_F_REPLY, json, &code), -1);
	CHECK_EQ(code, PROTO_E_BAD_MESSAGE);
	CHECK_EQ(hello(&s, PROTO_HELLO, 0, "{\"version\":1}", &code), -1);
	CHECK_EQ(code, PROTO_E_VERSION);
	snprintf(json, sizeof(json), "{\"version\":%d}", PROTO_VERSION);
	CHECK_EQ(hello(&s, PROTO_HELLO, 0, json, &code), -1);
	CHECK_EQ(code, PROTO_E_AUTH);
	snprintf(json, sizeof(json), "{\"version\":%d,\"secret\":\"%.63s\"}", PROTO_VERSION, GOOD);
	CHECK_EQ(hello(&s, PROTO_HELLO, 0, json, &code), -1);
	CHECK_EQ(code, PROTO_E_AUTH);
	snprintf(json, sizeof(json), "{\"version\":%d,\"secret\":\"%.63s0\"}", PROTO_VERSION, GOOD);
	CHECK_EQ(hello(&s, PROTO_HELLO, 0, json, &code), -1);
	CHECK_EQ(code, PROTO_E_AUTH);
	snprintf(json, sizeof(json), "{\"version\":%d,\"secret\":\"%s0\"}", PROTO_VERSION, GOOD);
	CHECK_EQ(hello(&s, PROTO_HELLO, 0, json, &code), -1);
	CHECK_EQ(code, PROTO_E_AUTH);
	CHECK_EQ(hello(&s, PROTO_HELLO, 0, "garbage", &code), -1);
	CHECK_EQ(code, PROTO_E_BAD_MESSAGE);
}

int main(void)
{
	CHECK(mkdtemp(dir) != NULL);
	test_load();
	test_equal();
	test_hello();
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		CHECK_EQ(system(cmd), 0);
	}
	return check_done("test_auth");
}
