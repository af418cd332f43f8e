/* The vCPU threads and their KVM_RUN loop. The loop knows no device: port and MMIO exits go
 * through vm->pio / vm->mmio; everything else is a life-cycle event (shutdown, internal error). */
#include "vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "boot.h"
#include "events.h"
#include "proto.h"
#include "pvm_insn.h"
#include "util.h"

#define VCPU_KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
	(void)sig;	/* only there to make KVM_RUN return -EINTR */
}

#define CPUID1_ECX_CX16 (1u << 13)

static int setup_cpuid(struct vcpu *v, char *err, size_t errlen)
{
	/* kvm-pvm workaround (PROTOCOL.md, "Linux boot"): a Linux guest using CMPXCHG16B stops
	 * there, so the feature is hidden from Linux guests on such hosts only. */
	int hide_cx16 = boot_mode_is_linux(v->vm->cfg.mode) && v->vm->kvm_pvm;
	int nent = 256;
	struct kvm_cpuid2 *cpuid;

	for (;;) {
		cpuid = calloc(1, sizeof(*cpuid) + (size_t)nent * sizeof(cpuid->entries[0]));
		if (!cpuid) {
			snprintf(err, errlen, "out of memory for CPUID");
			return -1;
		}
		cpuid->nent = (uint32_t)nent;
		if (ioctl(v->vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
			break;
		free(cpuid);
		if (errno != E2BIG || nent >= 4096) {
			snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
			return -1;
		}
		nent *= 2;
	}
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
		if (e->function == 1)	/* initial APIC id */
			e->ebx = (e->ebx & 0x00ffffff) | (v->id << 24);
		if (e->function == 1 && hide_cx16)
			e->ecx &= ~CPUID1_ECX_CX16;
		if (e->function == 0xb || e->function == 0x1f)	/* x2APIC id */
			e->edx = v->id;
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0) {
		snprintf(err, errlen, "KVM_SET_CPUID2 vcpu %u: %s", v->id, strerror(errno));
		free(cpuid);
		return -1;
	}
	free(cpuid);
	return 0;
}

int vcpus_create(struct vm *vm, char *err, size_t errlen)
{
	struct sigaction sa = { .sa_handler = kick_handler };

	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);	/* no SA_RESTART: KVM_RUN must return */
	vm->vcpus = calloc(vm->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		snprintf(err, errlen, "out of memory for vCPUs");
		return -1;
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vm->vcpus[i].fd = vm->vcpus[i].stats_fd = -1;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		v->vm = vm;
		v->id = i;
		v->stats_fd = -1;
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0) {
			snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", i, strerror(errno));
			return -1;
		}
		v->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			snprintf(err, errlen, "mmap kvm_run of vcpu %u: %s", i, strerror(errno));
			return -1;
		}
		if (setup_cpuid(v, err, errlen) < 0)
			return -1;
		if (i == 0 && boot_setup_vcpu(vm, v->fd, err, errlen) < 0)
			return -1;
#ifdef KVM_GET_STATS_FD
		v->stats_fd = ioctl(v->fd, KVM_GET_STATS_FD, NULL);
#endif
	}
	return 0;
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	v->count.io++;
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
		iobus_access(&v->vm->pio, run->io.port, run->io.direction == KVM_EXIT_IO_OUT, data,
			     run->io.size);
}

/* The guest cannot go on: push a TRIPLE_FAULT or INTERNAL_ERROR event and mark it CRASHED. */
static void crash(struct vcpu *v, const char *what, uint32_t code)
{
	struct kvm_regs regs;
	char reason[200], json[400];
	unsigned long long rip = 0;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
		rip = regs.rip;
	snprintf(reason, sizeof(reason), "%s on vcpu %u at rip=0x%llx (exit reason %u)", what,
		 v->id, rip, code);
	log_error("%s", reason);
	snprintf(json, sizeof(json),
		 "{\"vcpu\":%u,\"rip\":\"0x%llx\",\"exitReason\":%u,\"message\":\"%s\"}", v->id,
		 rip, code, reason);
	/* State first: a client that reacts to the event by asking STATUS must already see CRASHED. */
	vm_guest_stopped(v->vm, VM_CRASHED, reason);
	events_push(v->vm->events,
		    code == KVM_EXIT_SHUTDOWN ? PROTO_EV_TRIPLE_FAULT : PROTO_EV_INTERNAL_ERROR, json);
}

/* Handles one exit; returns 0 to keep running. */
static int handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char what[96];

	v->count.total++;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		return 0;
	case KVM_EXIT_MMIO:
		v->count.mmio++;
		iobus_access(&v->vm->mmio, run->mmio.phys_addr, run->mmio.is_write, run->mmio.data,
			     run->mmio.len);
		return 0;
	case KVM_EXIT_HLT:		/* only without an in-kernel LAPIC; just go back */
		v->count.hlt++;
		return 0;
	case KVM_EXIT_INTR:
		v->count.intr++;
		return 0;
	case KVM_EXIT_SHUTDOWN:
		v->count.shutdown++;
		crash(v, "triple fault", run->exit_reason);
		return -1;
	case KVM_EXIT_SYSTEM_EVENT:
		v->count.other++;
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
			events_push(v->vm->events, PROTO_EV_RESET, "{\"source\":\"system-event\"}");
			vm_guest_stopped(v->vm, VM_STOPPED, "guest reset");
			return -1;
		}
		if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN) {
			events_push(v->vm->events, PROTO_EV_POWEROFF, "{\"source\":\"system-event\"}");
			vm_guest_stopped(v->vm, VM_STOPPED, "guest power-off");
			return -1;
		}
		crash(v, "system event", run->system_event.type);
		return -1;
	case KVM_EXIT_INTERNAL_ERROR:
		v->count.other++;
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && v->vm->kvm_pvm &&
		    pvm_complete_insn(v) == 0)
			return 0;
		snprintf(what, sizeof(what), "KVM internal error (suberror %u)",
			 run->internal.suberror);
		crash(v, what, run->exit_reason);
		return -1;
	case KVM_EXIT_FAIL_ENTRY:
		v->count.other++;
		snprintf(what, sizeof(what), "VM entry failed (hardware reason 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		crash(v, what, run->exit_reason);
		return -1;
	default:
		v->count.other++;
		crash(v, "unhandled KVM exit", run->exit_reason);
		return -1;
	}
}

/* After KVM_RUN returned EINTR: parks the vCPU while a pause is requested; returns non-zero if
 * the thread must exit. */
static int park(struct vcpu *v)
{
	struct vm *vm = v->vm;
	int quit;

	pthread_mutex_lock(&vm->lock);
	if (vm->pause_req && !vm->quit) {
		vm->parked++;
		pthread_cond_broadcast(&vm->cond);
		while (vm->pause_req && !vm->quit)
			pthread_cond_wait(&vm->cond, &vm->lock);
		vm->parked--;
	}
	/* A kick is a one-shot "leave KVM_RUN". It is disarmed here, after the wait and under the
	 * lock every kick is made with: a kick that reaches a thread already parked (the threads of
	 * vcpus_start_parked park before vcpus_pause kicks them; the retry kick of a pause) must
	 * not leave immediate_exit set, or every KVM_RUN after the resume returns EINTR at once
	 * and the guest never runs again. */
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_RELEASE);
	quit = vm->quit;
	pthread_mutex_unlock(&vm->lock);
	return quit;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	sigset_t set;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	for (;;) {
		/* A pending I/O exit is completed by the next KVM_RUN even with immediate_exit
		 * set, so registers read while parked are consistent. */
		int r = ioctl(v->fd, KVM_RUN, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->count.intr++;
				if (park(v))	/* disarms the kick even when no pause is asked */
					break;
				continue;
			}
			char what[96];
			snprintf(what, sizeof(what), "KVM_RUN failed: %s", strerror(errno));
			crash(v, what, 0);
			break;
		}
		if (handle_exit(v) < 0 || __atomic_load_n(&vm->quit, __ATOMIC_ACQUIRE))
			break;
	}
	pthread_mutex_lock(&vm->lock);
	vm->live_threads--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vcpus_start(struct vm *vm, char *err, size_t errlen)
{
	sigset_t set, old;

	/* Threads start with the kick signal blocked and unblock it themselves; the control
	 * thread keeps it blocked so a kick never lands there. */
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		int e = pthread_create(&v->thread, NULL, vcpu_thread, v);
		if (e) {
			snprintf(err, errlen, "pthread_create vcpu %u: %s", i, strerror(e));
			return -1;
		}
		v->thread_live = 1;
		pthread_mutex_lock(&vm->lock);
		vm->live_threads++;
		pthread_mutex_unlock(&vm->lock);
	}
	vm->threads_started = 1;
	return 0;
}

int vcpus_start_parked(struct vm *vm, unsigned timeout_ms, char *err, size_t errlen)
{
	/* With pause_req set and immediate_exit armed, each thread's first KVM_RUN returns at
	 * once and it parks; vcpus_pause then just waits for them all. */
	__atomic_store_n(&vm->pause_req, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		__atomic_store_n(&vm->vcpus[i].run->immediate_exit, 1, __ATOMIC_RELEASE);
	if (vcpus_start(vm, err, errlen) < 0)
		return -1;
	if (vcpus_pause(vm, timeout_ms) < 0) {
		snprintf(err, errlen, "vCPU threads did not park within %u ms", timeout_ms);
		return -1;
	}
	return 0;
}

void vcpus_kick_all_locked(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (!v->thread_live)
			continue;
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
		pthread_kill(v->thread, VCPU_KICK_SIGNAL);
	}
}

int vcpus_pause(struct vm *vm, unsigned timeout_ms)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->pause_req, 1, __ATOMIC_RELEASE);
	vcpus_kick_all_locked(vm);
	while (vm->parked < vm->live_threads && rc == 0) {
		rc = pthread_cond_timedwait(&vm->cond, &vm->lock, &deadline);
		if (rc == ETIMEDOUT && vm->parked < vm->live_threads) {
			vcpus_kick_all_locked(vm);	/* one more try before giving up */
			rc = -1;
		} else {
			rc = 0;
		}
	}
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

void vcpus_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->pause_req, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void vcpus_join(struct vm *vm)
{
	for (unsigned i = 0; vm->vcpus && i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (v->thread_live) {
			pthread_join(v->thread, NULL);
			v->thread_live = 0;
		}
	}
}

void vcpus_teardown(struct vm *vm)
{
	for (unsigned i = 0; vm->vcpus && i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (v->run)
			munmap(v->run, (size_t)vm->run_size);
		if (v->stats_fd >= 0)
			close(v->stats_fd);
		if (v->fd >= 0)
			close(v->fd);
	}
	free(vm->vcpus);
	vm->vcpus = NULL;
}

void vcpu_exits_json(struct vcpu *v, struct sbuf *sb)
{
	sb_printf(sb, "{\"total\":%llu,\"io\":%llu,\"mmio\":%llu,\"hlt\":%llu,\"intr\":%llu,"
		  "\"shutdown\":%llu,\"other\":%llu}",
		  (unsigned long long)LOAD_RELAXED(v->count.total),
		  (unsigned long long)LOAD_RELAXED(v->count.io),
		  (unsigned long long)LOAD_RELAXED(v->count.mmio),
		  (unsigned long long)LOAD_RELAXED(v->count.hlt),
		  (unsigned long long)LOAD_RELAXED(v->count.intr),
		  (unsigned long long)LOAD_RELAXED(v->count.shutdown),
		  (unsigned long long)LOAD_RELAXED(v->count.other));
}
