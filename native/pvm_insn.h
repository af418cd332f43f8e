/* Instructions kvm-pvm's emulator stops at (an emulation-failure exit), completed by the helper.
 * kvm-pvm is the KVM of hosts that are themselves VMs without nested virtualization: it emulates
 * guest code, and a stock Linux kernel uses instructions it cannot emulate. Measured, on Debian's
 * 6.1 cloud kernel: INT3 in 64-bit mode (the kernel's text patching), then POPCNT and CLAC/STAC
 * (patched in by alternatives; hiding them in CPUID does not help: the guest still sees them).
 * Only called on kvm-pvm (vm->kvm_pvm): on VT-x/AMD-V hosts these never fail to run. */
#ifndef QVMM_PVM_INSN_H
#define QVMM_PVM_INSN_H

#include "vcpu.h"

/* Completes the instruction at the vCPU's RIP if it is one of those: INT3 delivers #BP (vector 3,
 * RIP after it); POPCNT reg, reg computes into the destination with its flags; CLAC/STAC clear/set
 * EFLAGS.AC. 0 if done (the vCPU
 * goes on), -1 otherwise (logged with the instruction's bytes; the VM crashes as before). */
int pvm_complete_insn(struct vcpu *v);

#endif
