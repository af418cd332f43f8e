// KVM tests need /dev/kvm. Where it is absent they skip, loudly; CI fails any skip on a machine that has it.
import { existsSync } from "node:fs";

export const hasKvm = existsSync("/dev/kvm");

if (!hasKvm) {
  console.warn("\n*** /dev/kvm is absent on this machine: the tests that run real VMs are SKIPPED ***\n");
}

/** kvm-pvm: the KVM of a host that is itself a VM without nested virtualization; guest code is emulated. */
export const isKvmPvm = existsSync("/sys/module/kvm_pvm");

/** Why a stock Linux kernel cannot reach userspace on kvm-pvm (measured; native/PROTOCOL.md, "Linux boot"). */
export const KVM_PVM_LINUX_SKIP =
  "this /dev/kvm is kvm-pvm (/sys/module/kvm_pvm): guest code is emulated at ~5 M instructions/s; qemu stops at the " +
  "kernel's first int3 (after 'x86/fpu: x87 FPU will use FXSAVE') and ours, with the instructions kvm-pvm cannot emulate " +
  "completed by the helper, is past 'smp: Brought up' at ~80 s but still in the kernel's initcalls (soft-lockup warnings " +
  "from the emulated speed) minutes later, far from /init";
