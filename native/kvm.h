/* The KVM device: open, API version check, capability table and checks. */
#ifndef QVMM_KVM_H
#define QVMM_KVM_H

#include <stddef.h>

#define QVMM_KVM_API_VERSION 12

struct kvm_cap_desc {
	const char *name;	/* without the KVM_CAP_ prefix */
	int id;
};

extern const struct kvm_cap_desc kvm_cap_table[];
extern const size_t kvm_cap_count;

/* Opens the device and checks KVM_GET_API_VERSION == 12. Returns the fd, or -1 with err filled. */
int kvm_open_device(const char *path, char *err, size_t errlen);

/* KVM_CHECK_EXTENSION on the system (or a VM) fd; <0 treated as 0. */
int kvm_check_cap(int fd, int cap);

/* Checks the capabilities the helper cannot run without; -1 with a clear message naming the missing one. */
int kvm_require_caps(int kvm_fd, char *err, size_t errlen);

/* Which kernel module provides KVM on this host ("kvm_intel", "kvm_amd", "kvm_pvm") or "". */
const char *kvm_module_name(void);

#endif
