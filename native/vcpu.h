/* vCPUs: one thread each, CPUID from KVM_GET_SUPPORTED_CPUID, the KVM_RUN loop that hands
 * exits to the I/O buses, pause/resume by signal + immediate_exit, per-vCPU exit counters. */
#ifndef QVMM_VCPU_H
#define QVMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>

#include "json.h"
#include "vm.h"

struct vcpu_counters {
	uint64_t total, io, mmio, hlt, intr, shutdown, other;
	uint64_t completed_insns;	/* kvm-pvm emulator gaps the helper completed (pvm_insn.c) */
};

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	int stats_fd;			/* KVM_GET_STATS_FD or -1 */
	struct kvm_run *run;
	pthread_t thread;
	int thread_live;
	struct vcpu_counters count;	/* written by the vCPU thread only; read relaxed */
};

int vcpus_create(struct vm *vm, char *err, size_t errlen);
/* Starts one thread per vCPU (state must already be RUNNING). */
int vcpus_start(struct vm *vm, char *err, size_t errlen);
/* Starts the threads of a CREATED VM whose state was just loaded, parked before their first
 * KVM_RUN (as if paused there): returns once all are parked, -1 with err otherwise. */
int vcpus_start_parked(struct vm *vm, unsigned timeout_ms, char *err, size_t errlen);
/* Asks every vCPU to leave KVM_RUN; with wait, until all are parked (pause) - timeout ms. */
int vcpus_pause(struct vm *vm, unsigned timeout_ms);
void vcpus_resume(struct vm *vm);
/* Makes the vCPU threads exit (caller holds vm->lock and has set vm->quit). */
void vcpus_kick_all_locked(struct vm *vm);
/* Joins threads that were started; safe to call more than once. */
void vcpus_join(struct vm *vm);
void vcpus_teardown(struct vm *vm);
/* Appends the vCPU's exit counters: {"total":N,"io":N,"mmio":N,"hlt":N,"intr":N,
 * "shutdown":N,"other":N}. */
void vcpu_exits_json(struct vcpu *v, struct sbuf *sb);

#endif
