// Finds helper processes by what the kernel says they are (/proc/PID/cmdline: a qumra-vmm whose
// --runtime-dir is a given folder), so a restarted agent sees helpers its records do not name
// (a create interrupted by a crash) and kills only processes verified to be such a helper.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

/** Live qumra-vmm processes whose runtime dir is directly under `runtimeDir`: vm dir → pids. */
export function helpersUnder(runtimeDir: string): Map<string, number[]> {
  const found = new Map<string, number[]>();
  const root = path.resolve(runtimeDir);
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const dir = helperDirOf(Number(name));
    if (dir === undefined || path.dirname(dir) !== root) continue;
    found.set(dir, [...(found.get(dir) ?? []), Number(name)]);
  }
  return found;
}

/** The command line of pid when it is a live qumra-vmm (or one of its test builds), else undefined. */
export function helperArgvOf(pid: number): string[] | undefined {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    // A zombie has an empty cmdline: it is no longer a helper.
  } catch {
    return undefined;
  }
  return path.basename(argv[0] ?? "").startsWith("qumra-vmm") ? argv : undefined;
}

/** The value of `flag` on a helper's command line, e.g. its --control or --runtime-dir. */
export function helperFlag(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i > 0 && argv[i + 1] ? argv[i + 1] : undefined;
}

/** The --runtime-dir of pid when it is a live qumra-vmm, else undefined. */
export function helperDirOf(pid: number): string | undefined {
  const argv = helperArgvOf(pid);
  const dir = argv && helperFlag(argv, "--runtime-dir");
  return dir ? path.resolve(dir) : undefined;
}

/** SIGKILLs pid if it still is the helper of `vmDir` (checked right before, against pid reuse). */
export function killHelper(pid: number, vmDir: string): boolean {
  if (helperDirOf(pid) !== path.resolve(vmDir)) return false;
  try {
    process.kill(pid, "SIGKILL");
    return true;
  } catch {
    return false;
  }
}

/** Waits (bounded) until none of pids is a helper any more; a killed helper's exit takes a moment. */
export async function waitGone(pids: number[], vmDir: string, maxMs = 3000): Promise<void> {
  const until = Date.now() + maxMs;
  while (pids.some((p) => helperDirOf(p) === path.resolve(vmDir)) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
}
