// KVM tests need /dev/kvm. Where it is absent they skip, loudly; CI fails any skip on a machine that has it.
import { existsSync } from "node:fs";

export const hasKvm = existsSync("/dev/kvm");

if (!hasKvm) {
  console.warn("\n*** /dev/kvm is absent on this machine: the tests that run real VMs are SKIPPED ***\n");
}
