/* The KVM device: opening it, the API version check and the capabilities we know by name. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define CAP(x) { #x, KVM_CAP_##x }

const struct kvm_cap_desc kvm_cap_table[] = {
	CAP(IRQCHIP), CAP(HLT), CAP(MMU_SHADOW_CACHE_CONTROL), CAP(USER_MEMORY),
	CAP(SET_TSS_ADDR), CAP(VAPIC), CAP(EXT_CPUID), CAP(CLOCKSOURCE), CAP(NR_VCPUS),
	CAP(NR_MEMSLOTS), CAP(PIT), CAP(NOP_IO_DELAY), CAP(MP_STATE), CAP(COALESCED_MMIO),
	CAP(SYNC_MMU), CAP(USER_NMI), CAP(SET_GUEST_DEBUG), CAP(REINJECT_CONTROL),
	CAP(IRQ_ROUTING), CAP(IRQ_INJECT_STATUS), CAP(MCE), CAP(IRQFD), CAP(PIT2),
	CAP(SET_BOOT_CPU_ID), CAP(PIT_STATE2), CAP(IOEVENTFD), CAP(SET_IDENTITY_MAP_ADDR),
	CAP(ADJUST_CLOCK), CAP(INTERNAL_ERROR_DATA), CAP(VCPU_EVENTS), CAP(X86_ROBUST_SINGLESTEP),
	CAP(DEBUGREGS), CAP(XSAVE), CAP(XCRS), CAP(ASYNC_PF), CAP(TSC_CONTROL), CAP(GET_TSC_KHZ),
	CAP(ONE_REG), CAP(SIGNAL_MSI), CAP(TSC_DEADLINE_TIMER), CAP(READONLY_MEM),
	CAP(IRQFD_RESAMPLE), CAP(KVMCLOCK_CTRL), CAP(MAX_VCPUS), CAP(SYNC_REGS),
	CAP(IMMEDIATE_EXIT), CAP(MANUAL_DIRTY_LOG_PROTECT2), CAP(DIRTY_LOG_RING),
	CAP(DIRTY_LOG_RING_ACQ_REL), CAP(BINARY_STATS_FD), CAP(X86_USER_SPACE_MSR),
	CAP(X86_MSR_FILTER), CAP(EXIT_HYPERCALL), CAP(SPLIT_IRQCHIP), CAP(X2APIC_API),
	CAP(CHECK_EXTENSION_VM), CAP(MAX_VCPU_ID), CAP(X86_DISABLE_EXITS), CAP(HALT_POLL),
	CAP(XSAVE2), CAP(PMU_CAPABILITY), CAP(X86_TRIPLE_FAULT_EVENT), CAP(X86_NOTIFY_VMEXIT),
	CAP(IOEVENTFD_ANY_LENGTH),
};
const size_t kvm_cap_count = ARRAY_SIZE(kvm_cap_table);

/* What the helper needs to run a VM, with the reason shown when one is missing. */
static const struct {
	int id;
	const char *name;
	const char *why;
} required_caps[] = {
	{ KVM_CAP_USER_MEMORY, "USER_MEMORY", "guest RAM is mapped from the helper's memfd" },
	{ KVM_CAP_IRQCHIP, "IRQCHIP", "serial and keyboard interrupts use the in-kernel irqchip" },
	{ KVM_CAP_PIT2, "PIT2", "the in-kernel PIT provides the guest timer" },
	{ KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR", "x86 needs a TSS area outside guest RAM" },
	{ KVM_CAP_EXT_CPUID, "EXT_CPUID", "CPUID is taken from KVM_GET_SUPPORTED_CPUID" },
	{ KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT", "pause takes vCPUs out of KVM_RUN with it" },
};

int kvm_open_device(const char *path, char *err, size_t errlen)
{
	int fd, version;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != QVMM_KVM_API_VERSION) {
		snprintf(err, errlen, "%s: KVM API version %d, need %d", path, version,
			 QVMM_KVM_API_VERSION);
		close(fd);
		return -1;
	}
	return fd;
}

int kvm_check_cap(int fd, int cap)
{
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

int kvm_require_caps(int kvm_fd, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(required_caps); i++) {
		if (kvm_check_cap(kvm_fd, required_caps[i].id) <= 0) {
			snprintf(err, errlen, "KVM lacks KVM_CAP_%s (%d): %s", required_caps[i].name,
				 required_caps[i].id, required_caps[i].why);
			return -1;
		}
	}
	return 0;
}

const char *kvm_module_name(void)
{
	static const char *const modules[] = { "kvm_intel", "kvm_amd", "kvm_pvm" };
	char path[64];
	struct stat st;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(modules); i++) {
		snprintf(path, sizeof(path), "/sys/module/%s", modules[i]);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return modules[i];
	}
	return "";
}
