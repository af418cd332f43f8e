// Helpers of the state tests: a running helper's argv, and commands (an agent expected to refuse) run to their end.
import { readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { agentBin } from "./agent.js";

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
