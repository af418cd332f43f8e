/* The helper's sandbox: fds, rlimits, mount namespace, ids, no_new_privs, seccomp (sandbox.h). */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "framebuffer.h"
#include "json.h"
#include "util.h"
#include "vm.h"

#define NOFILE_FLOOR    64		/* fds beyond those the VM holds at entry */
#define NPROC_LIMIT     4096		/* threads of all helpers of the vmm uid together */
#define FSIZE_FLOOR     (64ull << 20)	/* the log (stderr) is the only file written by write() */

static struct {
	int seccomp;		/* 0 disabled, 2 filter */
	int no_new_privs;
	int mount_ns;
	uint32_t uid, gid;
	char note[256];
} state;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	size_t used = strlen(state.note);
	va_list ap;

	if (used && used + 2 < sizeof(state.note)) {
		strcpy(state.note + used, "; ");
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(state.note + used, sizeof(state.note) - used, fmt, ap);
	va_end(ap);
}

/* ---- early: inherited fds ---- */

void sandbox_early(const struct sandbox_config *c)
{
	state.uid = (uint32_t)getuid();
	state.gid = (uint32_t)getgid();
	if (!c->enabled) {
		note("sandbox off (--no-sandbox)");
		return;
	}
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
		return;
#endif
	/* Older kernels: walk /proc/self/fd (collect first: closing while reading the dir is unsafe). */
	DIR *d = opendir("/proc/self/fd");
	int fds[1024], n = 0;

	if (!d) {
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		return;
	}
	for (struct dirent *e; (e = readdir(d)) && n < (int)ARRAY_SIZE(fds);) {
		int fd = atoi(e->d_name);
		if (fd >= 3 && fd != dirfd(d))
			fds[n++] = fd;
	}
	closedir(d);
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* ---- steady: rlimits ---- */

static int highest_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	int top = 2;

	if (!d)
		return 1024;
	for (struct dirent *e; (e = readdir(d));)
		if (atoi(e->d_name) > top && atoi(e->d_name) != dirfd(d))
			top = atoi(e->d_name);
	closedir(d);
	return top;
}

static int set_limit(int res, rlim_t v, const char *name, char *err, size_t errlen)
{
	struct rlimit cur, want = { v, v };

	if (getrlimit(res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && cur.rlim_max < v)
		want.rlim_cur = want.rlim_max = cur.rlim_max;	/* never raise a hard limit */
	if (setrlimit(res, &want) < 0) {
		snprintf(err, errlen, "sandbox: setrlimit(%s): %s", name, strerror(errno));
		return -1;
	}
	return 0;
}

static int set_limits(const struct sandbox_config *c, const struct vm *vm, char *err, size_t errlen)
{
	uint64_t fsize = FSIZE_FLOOR;

	if (vm->fb && vm->fb->size > fsize)
		fsize = vm->fb->size;
	/* A log past FSIZE loses lines (EFBIG) instead of killing the VM with SIGXFSZ. */
	signal(SIGXFSZ, SIG_IGN);
	if (set_limit(RLIMIT_CORE, 0, "CORE", err, errlen) < 0 ||
	    set_limit(RLIMIT_NOFILE, (rlim_t)highest_fd() + 1 + NOFILE_FLOOR, "NOFILE", err, errlen) < 0 ||
	    set_limit(RLIMIT_FSIZE, (rlim_t)fsize, "FSIZE", err, errlen) < 0)
		return -1;
	/* NPROC counts every thread of the real uid: bounded only for the helpers' own uid. */
	if (c->drop_ids && set_limit(RLIMIT_NPROC, NPROC_LIMIT, "NPROC", err, errlen) < 0)
		return -1;
	return 0;
}

/* ---- steady: mount namespace ---- */

static int mkdir_p(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* The new root is a tmpfs mounted over the runtime dir (inside the new namespace only) holding
 * the runtime dir again at its own absolute path and /dev/kvm, so the paths the helper still
 * uses (control socket and framebuffer, removed at exit) stay the same. */
static int build_root(const char *dir, const char *device, char *why, size_t whylen)
{
	char path[4096];
	int dirfd_ = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC), fd;

#define FAIL(...) do { snprintf(why, whylen, __VA_ARGS__); goto fail; } while (0)
	if (dirfd_ < 0)
		FAIL("open %.300s: %s", dir, strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		FAIL("make / private: %s", strerror(errno));
	if (mount("qumra-vmm-root", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0755") < 0)
		FAIL("tmpfs: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s%s", dir, dir);
	if (mkdir_p(path) < 0)
		FAIL("mkdir %.300s: %s", path, strerror(errno));
	snprintf(why, whylen, "/proc/self/fd/%d", dirfd_);
	/* Not MS_REC: that would bring along the tmpfs just stacked on the same directory. */
	if (mount(why, path, NULL, MS_BIND, NULL) < 0)
		FAIL("bind the runtime dir: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/dev", dir);
	if (mkdir(path, 0755) < 0)
		FAIL("mkdir %.300s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s%s", dir, device);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		FAIL("create %.300s: %s", path, strerror(errno));
	close(fd);
	if (mount(device, path, NULL, MS_BIND, NULL) < 0)
		FAIL("bind %.300s: %s", device, strerror(errno));
	if (chdir(dir) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		FAIL("pivot_root: %s", strerror(errno));
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		FAIL("detach the old root: %s", strerror(errno));
	/* Nothing more is created outside the runtime dir: the root itself goes read-only. */
	mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	close(dirfd_);
	return 0;
fail:
	if (dirfd_ >= 0)
		close(dirfd_);
	return -1;
#undef FAIL
}

static int under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return path && !strncmp(path, dir, n) && path[n] == '/' && !strchr(path + n + 1, '/');
}

/* Returns -1 only when the namespace exists but could not be finished (then the helper must
 * not go on: its view of the file system is half-built). */
static int enter_mount_ns(const struct vm *vm, char *err, size_t errlen)
{
	const char *dir = vm->cfg.runtime_dir;
	char why[512];

	if (!dir || dir[0] != '/' || !under(vm->cfg.control_path, dir)) {
		note("no mount namespace: needs an absolute --runtime-dir holding the control socket");
		return 0;
	}
	if (unshare(CLONE_NEWNS) < 0) {
		note("no mount namespace: unshare(CLONE_NEWNS): %s", strerror(errno));
		return 0;
	}
	if (build_root(dir, vm->cfg.device, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "sandbox: mount namespace: %s", why);
		return -1;
	}
	state.mount_ns = 1;
	return 0;
}

/* ---- steady: ids ---- */

static int drop_ids(const struct sandbox_config *c, char *err, size_t errlen)
{
	/* /dev/kvm and everything else is open already: no supplementary group is needed. */
	if (setgroups(0, NULL) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
	    setresuid(c->uid, c->uid, c->uid) < 0) {
		snprintf(err, errlen, "sandbox: drop to uid %u gid %u: %s", c->uid, c->gid, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 && c->uid != 0) {
		snprintf(err, errlen, "sandbox: uid 0 could be regained after the drop");
		return -1;
	}
	state.uid = c->uid;
	state.gid = c->gid;
	return 0;
}

/* ---- steady: seccomp ---- */

#define MAX_INSNS 256
struct prog {
	struct sock_filter f[MAX_INSNS];
	unsigned n;
};

static void emit(struct prog *p, struct sock_filter insn)
{
	if (p->n < MAX_INSNS)
		p->f[p->n] = insn;
	p->n++;
}

#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ALLOW     SECCOMP_RET_ALLOW
#define KILL      SECCOMP_RET_KILL_PROCESS

static void answer(struct prog *p, long nr, uint32_t action)
{
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action));
}

static void allow(struct prog *p, long nr)
{
	answer(p, nr, ALLOW);
}

/* nr allowed only when the low 32 bits of argument `arg` are one of `vals`; otherwise killed. */
static void allow_arg_in(struct prog *p, long nr, int arg, const uint32_t *vals, unsigned n)
{
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, (uint8_t)(n + 3)));
	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)ARG_LO(arg)));
	for (unsigned i = 0; i < n; i++)
		emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, vals[i], (uint8_t)(n - i), 0));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, KILL));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ALLOW));
}

/* nr allowed only when argument `arg` masked with `mask` equals `want`; otherwise killed. */
static void allow_arg_masked(struct prog *p, long nr, int arg, uint32_t mask, uint32_t want)
{
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 5));
	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)ARG_LO(arg)));
	emit(p, (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, mask));
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, want, 1, 0));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, KILL));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ALLOW));
}

/* nr allowed only when argument `arg` has every bit of `bits`. */
static void allow_arg_bits(struct prog *p, long nr, int arg, uint32_t bits)
{
	allow_arg_masked(p, nr, arg, bits, bits);
}

/* nr allowed only when argument `arg` has none of `bits`. */
static void allow_arg_without(struct prog *p, long nr, int arg, uint32_t bits)
{
	allow_arg_masked(p, nr, arg, bits, 0);
}

/* The steady state's syscalls, each with why (the list is also in PROTOCOL.md). */
static void build_filter(struct prog *p)
{
	static const uint32_t kvm_ioctls[] = {
		KVM_RUN,		/* the vCPU loop */
		KVM_GET_REGS, KVM_SET_REGS,	/* GET_REGS/SET_REGS requests, boot registers */
		KVM_GET_SREGS, KVM_SET_SREGS,
		KVM_IRQ_LINE,		/* device interrupts (serial, i8042, doorbell) */
		KVM_GET_DIRTY_LOG,	/* DIRTY, RAM_DIRTY: the framebuffer's and RAM's dirty pages */
		KVM_SET_USER_MEMORY_REGION,	/* RAM_DIRTY_LOG: a RAM slot's logging flag */
		KVM_TRANSLATE,		/* kvm-pvm's INT3 gap: the instruction's address (vcpu.c) */
		/* SAVE_STATE / LOAD_STATE (vmstate.c): the vCPUs' and the VM's state */
		KVM_GET_FPU, KVM_SET_FPU, KVM_GET_XSAVE, KVM_GET_XSAVE2, KVM_SET_XSAVE,
		KVM_GET_XCRS, KVM_SET_XCRS, KVM_GET_MSRS, KVM_SET_MSRS, KVM_GET_LAPIC, KVM_SET_LAPIC,
		KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS,
		KVM_GET_MP_STATE, KVM_SET_MP_STATE, KVM_GET_IRQCHIP, KVM_SET_IRQCHIP,
		KVM_GET_PIT2, KVM_SET_PIT2, KVM_GET_CLOCK, KVM_SET_CLOCK,
	};
	const uint32_t pid = (uint32_t)getpid();
	const uint32_t prctl_ops[] = { PR_SET_NAME };	/* pthread_setname_np of a vCPU thread */
	const uint32_t sockopts[] = { SO_PEERCRED };	/* who a refused connection came from (the log) */

	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, KILL));
	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
	/* x32 numbers alias the x86-64 ones with bit 30 set: refuse them all. */
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, KILL));

	/* First: KVM_RUN once per VM exit is by far the most frequent syscall (the filter is linear). */
	allow_arg_in(p, SYS_ioctl, 1, kvm_ioctls, ARRAY_SIZE(kvm_ioctls));
	allow(p, SYS_read);		/* eventfd and signalfd wake-ups */
	allow(p, SYS_write);		/* the log (stderr), eventfd wake-ups */
	allow(p, SYS_recvfrom);		/* recv() on the control connection */
	allow(p, SYS_sendto);		/* send() on the control connection */
	allow(p, SYS_poll);		/* the control loop */
	allow(p, SYS_ppoll);		/* the same, as some libcs spell poll */
	allow(p, SYS_accept4);		/* a (re-)attaching agent */
	allow(p, SYS_close);		/* a replaced client, teardown */
	allow(p, SYS_pread64);		/* KVM binary statistics fds (STATS) */
	allow(p, SYS_clock_gettime);	/* timestamps, timeouts (vDSO fallback) */
	allow(p, SYS_getpid);		/* the log prefix, STATUS pid, pthread_kill */
	allow(p, SYS_gettid);		/* glibc's thread bookkeeping */
	allow(p, SYS_futex);		/* mutexes, condition variables, pthread_join */
	allow(p, SYS_munmap);		/* free, thread stacks, teardown of RAM/framebuffer/kvm_run */
	allow(p, SYS_madvise);		/* malloc trimming, exiting threads' stacks */
	allow(p, SYS_brk);		/* malloc */
	allow(p, SYS_mremap);		/* realloc of a large (mmapped) block; it cannot add PROT_EXEC */
	allow(p, SYS_set_robust_list);	/* every new thread (glibc) */
	allow(p, SYS_rseq);		/* every new thread (glibc >= 2.35) */
	allow(p, SYS_rt_sigaction);	/* control loop signal setup (SIGPIPE, SIGHUP ignored) */
	allow(p, SYS_rt_sigprocmask);	/* pthread_sigmask: kick signal, SIGTERM/SIGINT blocked */
	allow(p, SYS_rt_sigreturn);	/* return from the vCPU kick handler */
	allow(p, SYS_signalfd4);	/* SIGTERM/SIGINT as an fd for the control loop */
	allow(p, SYS_lseek);		/* RAM_MAP, RAM_CHECKSUM: SEEK_DATA / SEEK_HOLE on the RAM memfd */
	allow(p, SYS_unlink);		/* control socket and framebuffer file removed at exit */
	allow(p, SYS_exit);		/* a vCPU thread ends */
	allow(p, SYS_exit_group);	/* the helper exits */
	/* malloc, thread stacks and their guard pages, arenas: never executable memory. */
	allow_arg_without(p, SYS_mmap, 2, PROT_EXEC);
	allow_arg_without(p, SYS_mprotect, 2, PROT_EXEC);
	allow_arg_in(p, SYS_tgkill, 0, &pid, 1);	/* pthread_kill (vCPU kick) in this process only */
	allow_arg_in(p, SYS_prctl, 0, prctl_ops, ARRAY_SIZE(prctl_ops));
	allow_arg_in(p, SYS_getsockopt, 2, sockopts, ARRAY_SIZE(sockopts));
	allow_arg_bits(p, SYS_clone, 0, CLONE_THREAD | CLONE_VM);	/* vCPU threads, never a process */
	answer(p, SYS_clone3, SECCOMP_RET_ERRNO | ENOSYS);	/* flags are in memory BPF cannot read: glibc falls back to clone */
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, KILL));
}

static int install_seccomp(char *err, size_t errlen)
{
	struct prog p = { .n = 0 };
	struct sock_fprog fprog;

	build_filter(&p);
	if (p.n > MAX_INSNS) {
		snprintf(err, errlen, "sandbox: seccomp filter too long (%u instructions)", p.n);
		return -1;
	}
	fprog = (struct sock_fprog){ .len = (unsigned short)p.n, .filter = p.f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "sandbox: no_new_privs: %s", strerror(errno));
		return -1;
	}
	state.no_new_privs = 1;
	/* TSYNC: any thread that exists already gets the filter too (today there is none yet). */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog) != 0) {
		snprintf(err, errlen, "sandbox: seccomp filter: %s", strerror(errno));
		return -1;
	}
	state.seccomp = 2;
	return 0;
}

int sandbox_enter(const struct sandbox_config *c, const struct vm *vm, char *err, size_t errlen)
{
	uint64_t t0 = now_ns();

	if (!c->enabled) {
		log_warn("sandbox off (--no-sandbox)");
		return 0;
	}
	if (set_limits(c, vm, err, errlen) < 0 || enter_mount_ns(vm, err, errlen) < 0)
		return -1;
	if (c->drop_ids && drop_ids(c, err, errlen) < 0)
		return -1;
	if (!c->drop_ids)
		note("runs as the agent's uid %u", state.uid);
	if (install_seccomp(err, errlen) < 0)
		return -1;
	log_info("sandbox in force in %llu us: seccomp filter, uid %u gid %u, no_new_privs, %s%s%s",
		 (unsigned long long)((now_ns() - t0) / 1000), state.uid, state.gid,
		 state.mount_ns ? "mount namespace" : "no mount namespace", state.note[0] ? "; " : "", state.note);
	return 0;
}

void sandbox_status_json(struct sbuf *sb)
{
	sb_printf(sb, ",\"sandbox\":{\"seccomp\":\"%s\",\"uid\":%u,\"gid\":%u,\"noNewPrivs\":%s,"
		  "\"mountNamespace\":%s,\"note\":",
		  state.seccomp == 2 ? "filter" : "disabled", state.uid, state.gid,
		  state.no_new_privs ? "true" : "false", state.mount_ns ? "true" : "false");
	sb_json_str(sb, state.note);
	sb_printf(sb, "}");
}

void sandbox_test_hook(const uint8_t *bytes, size_t len)
{
#ifdef QUMRA_SECCOMP_TEST
	static const char word[] = "SECCOMP-TEST";

	if (memmem(bytes, len, word, sizeof(word) - 1)) {
		log_info("seccomp test build: calling socket(), which the filter forbids");
		syscall(SYS_socket, 1, 1, 0);
		log_error("socket() was allowed: the seccomp filter is not in force");
	}
#else
	(void)bytes;
	(void)len;
#endif
}
