// Fails CI when tests were skipped on a machine that has /dev/kvm (KVM tests may skip only where it is absent).
// One exception: on kvm-pvm (/sys/module/kvm_pvm; guest code emulated) a stock Linux kernel cannot reach
// userspace, so the hardware-backed part of test/linux-boot.test.ts skips there, and only that part.
import { readFileSync, existsSync } from "node:fs";

const ALLOWED_ON_KVM_PVM = { file: /\/test\/linux-boot\.test\.ts$/, test: /^Linux boot on a hardware-backed KVM / };

const [report] = process.argv.slice(2);
const results = JSON.parse(readFileSync(report, "utf8"));
const kvmPvm = existsSync("/sys/module/kvm_pvm");
const skipped = [];
const allowed = [];
for (const file of results.testResults) {
  for (const t of file.assertionResults) {
    if (t.status !== "skipped" && t.status !== "pending" && t.status !== "todo") continue;
    const name = `${file.name}: ${t.fullName}`;
    if (kvmPvm && ALLOWED_ON_KVM_PVM.file.test(file.name) && ALLOWED_ON_KVM_PVM.test.test(t.fullName)) allowed.push(name);
    else skipped.push(name);
  }
}
console.log(`tests: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${skipped.length + allowed.length} skipped`);
if (allowed.length > 0) console.log(`skipped because this /dev/kvm is kvm-pvm (stock Linux cannot reach userspace here), as allowed:\n  ${allowed.join("\n  ")}`);
if (skipped.length > 0 && existsSync("/dev/kvm")) {
  console.error(`/dev/kvm exists, yet ${skipped.length} tests were skipped:\n  ${skipped.join("\n  ")}`);
  process.exit(1);
}
