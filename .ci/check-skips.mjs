// Fails CI when tests were skipped on a machine that has /dev/kvm (KVM tests may skip only where it is absent).
import { readFileSync, existsSync } from "node:fs";

const [report] = process.argv.slice(2);
const results = JSON.parse(readFileSync(report, "utf8"));
const skipped = results.testResults.flatMap((file) =>
  file.assertionResults.filter((t) => t.status === "skipped" || t.status === "pending" || t.status === "todo").map((t) => `${file.name}: ${t.fullName}`),
);
console.log(`tests: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${skipped.length} skipped`);
if (skipped.length > 0 && existsSync("/dev/kvm")) {
  console.error(`/dev/kvm exists, yet ${skipped.length} tests were skipped:\n  ${skipped.join("\n  ")}`);
  process.exit(1);
}
