// Helpers of the state tests: which helper processes run, by runtime dir, as the kernel reports them.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { agentBin } from "./agent.js";

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

/** The argv (after the binary) and binary of a running helper. */
export function argvOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a, i, all) => i < all.length - 1 || a !== "");
}

/** Runs a command to its end: exit code and output. */
export function runToEnd(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** Runs qumra-agent with these args to its end (for an agent expected to refuse to start). */
export function runAgentToEnd(args: string[]): Promise<{ code: number | null; output: string }> {
  return runToEnd(process.execPath, [agentBin, ...args]);
}
