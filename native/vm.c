/* VM-wide life-cycle helpers shared by the vCPU threads, the devices and the control thread. */
#include "vm.h"

#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "events.h"
#include "json.h"
#include "proto.h"
#include "util.h"
#include "vcpu.h"

const char *vm_state_name(enum vm_state s)
{
	switch (s) {
	case VM_CREATED: return "created";
	case VM_RUNNING: return "running";
	case VM_PAUSED: return "paused";
	case VM_STOPPED: return "stopped";
	case VM_CRASHED: return "crashed";
	}
	return "unknown";
}

void vm_irq_line(struct vm *vm, unsigned irq, int level)
{
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		log_warn("KVM_IRQ_LINE %u=%d failed", irq, level);
}

void vm_set_state_locked(struct vm *vm, enum vm_state state, const char *reason)
{
	struct sbuf sb;

	vm->state = state;
	snprintf(vm->reason, sizeof(vm->reason), "%s", reason ? reason : "");
	sb_init(&sb);
	sb_printf(&sb, "{\"state\":\"%s\",\"reason\":", vm_state_name(state));
	sb_json_str(&sb, vm->reason);
	sb_printf(&sb, "}");
	if (sb.data)
		events_push(vm->events, PROTO_EV_STATE, sb.data);
	sb_free(&sb);
	log_info("state %s%s%s", vm_state_name(state), reason && *reason ? ": " : "",
		 reason ? reason : "");
}

void vm_guest_stopped(struct vm *vm, enum vm_state state, const char *reason)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_RUNNING || vm->state == VM_PAUSED) {
		vm_set_state_locked(vm, state, reason);
		__atomic_store_n(&vm->quit, 1, __ATOMIC_RELEASE);
		vcpus_kick_all_locked(vm);
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
}
