/* The VM: setup and teardown of its parts, and the life-cycle helpers shared by the vCPU
 * threads, the devices (through their hooks) and the control thread. */
#include "vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "acpi_pm.h"
#include "boot.h"
#include "debugport.h"
#include "events.h"
#include "framebuffer.h"
#include "i8042.h"
#include "json.h"
#include "kvm.h"
#include "proto.h"
#include "serial.h"
#include "util.h"
#include "vcpu.h"
#include "vmstate.h"

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

const char *boot_mode_name(enum boot_mode m)
{
	switch (m) {
	case BOOT_LONG: return "long";
	case BOOT_PROTECTED: return "protected";
	case BOOT_PVH: return "pvh";
	case BOOT_BZIMAGE: return "bzimage";
	}
	return "unknown";
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

/* A device's interrupt line: an input of the in-kernel irqchip. */
static void kvm_irq_set(void *opaque, unsigned irq, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		log_warn("KVM_IRQ_LINE %u=%d failed", irq, level);
}

static struct irq_line kvm_irq(struct vm *vm, unsigned irq)
{
	return (struct irq_line){ .set = kvm_irq_set, .opaque = vm, .irq = irq };
}

/* A device stopping the guest (reset line, power-off port). */
static void guest_stop(void *opaque, const char *reason)
{
	vm_guest_stopped(opaque, VM_STOPPED, reason);
}

/* The KVM side: device, capabilities, VM fd, TSS, irqchip, PIT and the stats fd. */
static int create_kvm_vm(struct vm *vm, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	unsigned maxv;

	vm->kvm_fd = kvm_open_device(vm->cfg.device, err, errlen);
	if (vm->kvm_fd < 0 || kvm_require_caps(vm->kvm_fd, err, errlen) < 0)
		return -1;
	maxv = (unsigned)kvm_check_cap(vm->kvm_fd, KVM_CAP_MAX_VCPUS);
	if (maxv && vm->cfg.nr_vcpus > maxv) {
		snprintf(err, errlen, "%u vCPUs requested, KVM allows %u", vm->cfg.nr_vcpus, maxv);
		return -1;
	}
	vm->nr_vcpus = vm->cfg.nr_vcpus;
	vm->kvm_pvm = !strcmp(kvm_module_name(), "kvm_pvm");
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->run_size <= 0 || vm->vm_fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, BOOT_TSS_ADDR) < 0) {
		snprintf(err, errlen, "KVM_SET_TSS_ADDR: %s", strerror(errno));
		return -1;
	}
	if (kvm_check_cap(vm->kvm_fd, KVM_CAP_SET_IDENTITY_MAP_ADDR)) {
		uint64_t idmap = BOOT_IDMAP_ADDR;
		if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
			log_warn("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		snprintf(err, errlen, "in-kernel irqchip/PIT: %s", strerror(errno));
		return -1;
	}
#ifdef KVM_GET_STATS_FD
	vm->stats_fd = ioctl(vm->vm_fd, KVM_GET_STATS_FD, NULL);
#endif
	return 0;
}

/* The event queue and the devices; each device's error names it. */
static int create_devices(struct vm *vm, char *err, size_t errlen)
{
	struct stop_hook stop = { .stop = guest_stop, .opaque = vm };

	vm->events = events_create();
	if (!vm->events) {
		snprintf(err, errlen, "event queue: %s", strerror(errno));
		return -1;
	}
	vm->serial = serial_init(&vm->pio, kvm_irq(vm, SERIAL_IRQ), vm->events, err, errlen);
	if (!vm->serial)
		return -1;
	vm->kbd = i8042_init(&vm->pio, kvm_irq(vm, I8042_KBD_IRQ), kvm_irq(vm, I8042_AUX_IRQ),
			     vm->events, stop, err, errlen);
	if (!vm->kbd)
		return -1;
	vm->debug = debugport_init(&vm->pio, kvm_irq(vm, QG_DOORBELL_IRQ), vm->events, stop, err,
				   errlen);
	if (!vm->debug)
		return -1;
	vm->fb = framebuffer_init(vm->vm_fd, vm->cfg.fb_width, vm->cfg.fb_height,
				  vm->cfg.runtime_dir, &vm->pio, vm->debug, err, errlen);
	if (!vm->fb)
		return -1;
	/* Every guest has the ports; only Linux guests get the ACPI tables that name them. */
	vm->acpi_pm = acpi_pm_init(&vm->pio, vm->events, stop, err, errlen);
	return vm->acpi_pm ? 0 : -1;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, char *err, size_t errlen)
{
	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = vm->stats_fd = -1;
	vm->mem.memfd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->state = VM_CREATED;
	if (create_kvm_vm(vm, err, errlen) < 0 ||
	    memory_init(&vm->mem, vm->vm_fd, vm->cfg.mem_size, err, errlen) < 0 ||
	    create_devices(vm, err, errlen) < 0 || boot_load(vm, err, errlen) < 0)
		return -1;
	if (vcpus_create(vm, err, errlen) < 0)
		return -1;
	return vmstate_host_init(vm, err, errlen);
}

void vm_destroy(struct vm *vm)
{
	vcpus_join(vm);
	vcpus_teardown(vm);
	vmstate_host_free(vm);
	migration_teardown(&vm->migration);
	acpi_pm_teardown(vm->acpi_pm);
	framebuffer_teardown(vm->fb);
	debugport_teardown(vm->debug);
	i8042_teardown(vm->kbd);
	serial_teardown(vm->serial);
	events_destroy(vm->events);
	vm->fb = NULL;
	vm->acpi_pm = NULL;
	vm->debug = NULL;
	vm->kbd = NULL;
	vm->serial = NULL;
	vm->events = NULL;
	memory_teardown(&vm->mem);
	if (vm->stats_fd >= 0)
		close(vm->stats_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->stats_fd = vm->vm_fd = vm->kvm_fd = -1;
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
}
