/* The VM as a whole: its KVM fds, memory, vCPUs, I/O buses, devices and life-cycle state;
 * building it (vm_create) and taking it apart (vm_destroy).
 * Locking: vm->lock guards state, pause/quit requests and the parked-vCPU count. */
#ifndef QVMM_VM_H
#define QVMM_VM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "iobus.h"
#include "memory.h"
#include "migration.h"

enum vm_state {
	VM_CREATED,
	VM_RUNNING,
	VM_PAUSED,
	VM_STOPPED,	/* guest powered off or reset; the helper stays up until told to stop */
	VM_CRASHED,	/* triple fault or a KVM exit the helper cannot handle */
};

/* From --kernel: BOOT_PVH, an ELF kernel through its PVH entry (pvh.h); BOOT_BZIMAGE, a bzImage
 * through the Linux boot protocol (bzimage.h). Both get ACPI tables (acpi.h). */
enum boot_mode { BOOT_LONG, BOOT_PROTECTED, BOOT_PVH, BOOT_BZIMAGE };

static inline int boot_mode_is_linux(enum boot_mode m)
{
	return m == BOOT_PVH || m == BOOT_BZIMAGE;
}

struct vm_config {
	unsigned nr_vcpus;
	uint64_t mem_size;
	const char *image;
	uint64_t load_addr;
	uint64_t entry;
	enum boot_mode mode;
	const char *kernel;		/* Linux: --kernel, --initrd (or NULL), --cmdline */
	const char *initrd;
	const char *cmdline;
	const char *device;
	const char *control_path;
	const char *runtime_dir;
	uint64_t stop_timeout_ms;
	uint32_t fb_width, fb_height;	/* framebuffer geometry (--fb-width/--fb-height) */
};

struct vcpu;
struct serial;
struct i8042;
struct debugport;
struct framebuffer;
struct acpi_pm;
struct events;
struct vmstate_host;

struct vm {
	struct vm_config cfg;
	int kvm_fd;
	int vm_fd;
	int stats_fd;			/* KVM_GET_STATS_FD of the VM, or -1 */
	int run_size;			/* KVM_GET_VCPU_MMAP_SIZE */
	struct guest_memory mem;
	struct migration migration;	/* RAM dirty log and counters (control thread only) */
	struct iobus pio;
	struct iobus mmio;
	struct vcpu *vcpus;
	unsigned nr_vcpus;
	/* KVM is kvm-pvm (a host that is itself a VM without nested virtualization: guest code is
	 * emulated); some of its emulator's gaps are worked around (PROTOCOL.md, "Linux boot"). */
	int kvm_pvm;

	struct serial *serial;
	struct i8042 *kbd;
	struct debugport *debug;
	struct framebuffer *fb;
	struct acpi_pm *acpi_pm;
	struct events *events;
	struct vmstate_host *vs_host;	/* what a saved state is checked against (vmstate.h) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vm_state state;
	char reason[256];		/* why the VM is in its state (shown by status) */
	int pause_req;
	int quit;			/* vCPU threads leave their loop */
	unsigned live_threads;
	unsigned parked;
	int threads_started;
};

const char *vm_state_name(enum vm_state s);
/* "long", "protected", "pvh" or "bzimage" (STATUS's mode). */
const char *boot_mode_name(enum boot_mode m);

/* Builds the VM described by cfg, in this order: KVM (device, VM, irqchip, PIT), guest RAM,
 * the event queue, the devices (serial, i8042, debug port, framebuffer, ACPI power
 * management), the boot image (after the framebuffer, which a bzImage is told
 * about), the vCPUs, which are not started, and what this host's KVM saves of them
 * (vmstate_host_init). Returns 0, or -1 with err naming the part that failed and why;
 * vm_destroy must be called either way. */
int vm_create(struct vm *vm, const struct vm_config *cfg, char *err, size_t errlen);
/* Joins the vCPU threads and frees what vm_create built, in reverse order. */
void vm_destroy(struct vm *vm);

/* Called from a vCPU thread (or the control thread) when the guest stopped itself:
 * power-off, reset, triple fault, internal error. Moves the VM to `state`, records the
 * reason and makes every vCPU leave KVM_RUN for good. No effect if the VM is not running. */
void vm_guest_stopped(struct vm *vm, enum vm_state state, const char *reason);

/* Sets the state and pushes a state event; caller holds vm->lock. */
void vm_set_state_locked(struct vm *vm, enum vm_state state, const char *reason);

#endif
