// The table `qumra bench boot` prints: one row per milestone (ms from create/spawn on each side, and
// their ratio), how far each side got and how it ended, and a footnote saying what each side ran.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import os from "node:os";
import { table } from "../agent/src/cli/format.js";
import type { BootBenchResult } from "./boot.js";
import type { BootRun } from "./boot-qemu.js";
import { QEMU } from "./spice-qemu.js";

/** The console's last non-empty line: where a side stopped. */
function lastLine(run: BootRun): string {
  return run.console.split(/\r?\n/).map((l) => l.trim()).filter(Boolean).at(-1) ?? "(nothing on the console)";
}

export function renderBootBench(r: BootBenchResult): string {
  const o = r.options;
  const vs = Boolean(r.qemu);
  const cell = (ms: number | undefined) => (ms === undefined ? "-" : ms);
  const rows: (string | number)[][] = r.rows.map((x) => [x.milestone, cell(x.qumraMs), ...(vs ? [cell(x.qemuMs), x.ratio === undefined ? "-" : `${x.ratio}x`] : [])]);
  rows.push(["furthest reached", r.qumra.furthest ?? "none", ...(vs ? [r.qemu!.furthest ?? "none", ""] : [])]);
  rows.push(["ended", `${r.qumra.end} after ${r.qumra.totalMs} ms`, ...(vs ? [`${r.qemu!.end} after ${r.qemu!.totalMs} ms`, ""] : [])]);
  const header = ["MILESTONE", "QUMRA ms", ...(vs ? ["QEMU ms", "QUMRA/QEMU"] : [])];
  const mib = Math.round(o.memoryBytes / (1 << 20));
  const pvm = existsSync("/sys/module/kvm_pvm");
  const notes = [
    ...(vs ? ["QUMRA/QEMU: ours over qemu's ms, below 1 is sooner; each side's t0 is just before it is asked to make its VM"] : []),
    `both: kernel ${o.kernel}${o.initrd ? `, initrd ${o.initrd}` : ", no initrd"}, command line "${o.cmdline}", ${mib} MiB, ${o.vcpus} vCPU${o.vcpus > 1 ? "s" : ""}, timeout ${o.timeoutMs} ms${pvm ? "; host KVM is kvm-pvm (guest code emulated)" : ""}`,
    `host load (1 min) as each side started: qumra ${r.loadAtStart.qumra.toFixed(2)}${r.loadAtStart.qemu === undefined ? "" : `, qemu ${r.loadAtStart.qemu.toFixed(2)}`} on ${os.availableParallelism()} CPUs`,
    `qumra: its own agent (--images-dir holding links of those files), CreateVm with boot linux (a vmlinux through its PVH entry, a bzImage through the boot protocol), t0 just before CreateVm; ended: ${r.qumra.endDetail}; last console line: ${lastLine(r.qumra)}`,
  ];
  if (r.qemu) {
    const version = spawnSync(QEMU, ["--version"], { encoding: "utf8" }).stdout.split("\n")[0]?.trim() ?? QEMU;
    notes.push(`qemu: ${version}: ${QEMU} ${(r.qemuArgs ?? []).map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(" ")}, t0 just before spawn; ended: ${r.qemu.endDetail}; last console line: ${lastLine(r.qemu)}`);
  }
  return `${table(header, rows)}\n${notes.join("\n")}`;
}
