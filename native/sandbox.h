/* The helper's sandbox (Firecracker's jailer as the model), in two stages:
 *   early  (right after the arguments are parsed): close every inherited fd but stdio;
 *   steady (after the VM, its devices and the control socket exist, before serving):
 *          rlimits, a private mount namespace showing only the runtime dir and /dev/kvm,
 *          the unprivileged uid/gid, no_new_privs and a seccomp-bpf allowlist that kills the
 *          process on any other syscall.
 * What is in force is kept here and reported in the STATUS/HELLO reply ("sandbox"). */
#ifndef QVMM_SANDBOX_H
#define QVMM_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

struct sbuf;
struct vm;

struct sandbox_config {
	int enabled;		/* 0 with --no-sandbox: nothing at all is done */
	int drop_ids;		/* --uid and --gid were given */
	uint32_t uid, gid;
};

/* Early stage: closes fds 3 and up (close_range, or a loop where it is missing). */
void sandbox_early(const struct sandbox_config *c);

/* Steady stage for this VM; 0, or -1 with err naming the step that failed. Steps the kernel
 * refuses that are not essential (the mount namespace) are skipped with the reason kept. */
int sandbox_enter(const struct sandbox_config *c, const struct vm *vm, char *err, size_t errlen);

/* ,"sandbox":{"seccomp","uid","gid","noNewPrivs","mountNamespace","note"} for STATUS. */
void sandbox_status_json(struct sbuf *sb);

/* Console input seen by the helper: the seccomp test build (-DQUMRA_SECCOMP_TEST) makes a
 * forbidden syscall on "SECCOMP-TEST"; the normal build does nothing. */
void sandbox_test_hook(const uint8_t *bytes, size_t len);

#endif
