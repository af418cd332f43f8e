// What the kernel says about processes the tests started: which helpers run, and how much memory a process holds.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

/** pid → runtime dir of every live qumra-vmm whose runtime dir is under `runtimeDir`. */
export function helpersIn(runtimeDir: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (!argv[0]?.endsWith("qumra-vmm")) continue;
    const dir = argv[argv.indexOf("--runtime-dir") + 1];
    if (dir?.startsWith(runtimeDir + path.sep)) out.set(Number(pid), dir);
  }
  return out;
}

/** The resident set size of `pid` in bytes (VmRSS in /proc/PID/status). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}
