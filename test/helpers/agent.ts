// Starts a real qumra-agent process (from the build output) for integration tests.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { helpersIn } from "./proc.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const agentBin = path.join(repoRoot, "bin", "qumra-agent.js");
export const cliBin = path.join(repoRoot, "bin", "qumra.js");

export interface RunningAgent {
  process: ChildProcess;
  /** TCP address "127.0.0.1:PORT" when listening on TCP. */
  address?: string;
  /** Every address the agent reported. */
  listen: string[];
  /** The read-write unix socket's path (default RUNTIME/qumra.sock), unless --unix none. */
  socket?: string;
  /** The read-only unix socket beside it (viewer only). */
  readOnlySocket?: string;
  /** The --http listener's address "127.0.0.1:PORT", when it has one. */
  http?: string;
  /** The --metrics listener's address "127.0.0.1:PORT", when it has one. */
  metrics?: string;
  /** The --health-listen listener's address "127.0.0.1:PORT", when it has one. */
  health?: string;
  stateDir: string;
  runtimeDir: string;
  logs: () => string;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/** Test agents' cgroup subtrees are named qumra-test-PID-N.slice (PID: the test worker). */
export const TEST_CGROUP_PREFIX = "qumra-test-";
let agentCount = 0;

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `qumra-${prefix}-`));
}

/** Starts an agent with `args` (default: an ephemeral loopback port and temp state/runtime dirs). */
export async function startAgent(args: string[] = [], opts: { stateDir?: string; runtimeDir?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunningAgent> {
  const stateDir = opts.stateDir ?? tempDir("state");
  const runtimeDir = opts.runtimeDir ?? tempDir("run");
  const hasListen = args.some((a) => /^--(listen|unix)(=|$)/.test(a));
  // Agents of parallel tests share the host's cgroup tree: each gets a subtree of its own (setup.ts removes it).
  if (!args.includes("--cgroup-parent")) args = [...args, "--cgroup-parent", `${TEST_CGROUP_PREFIX}${process.pid}-${++agentCount}.slice`];
  const child = spawn(
    process.execPath,
    [agentBin, ...(hasListen ? [] : ["--listen", "127.0.0.1:0"]), "--state-dir", stateDir, "--runtime-dir", runtimeDir, ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } },
  );
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const { listen, http, metrics, health } = await new Promise<{ listen: string[]; http?: string; metrics?: string; health?: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not start within 20 s:\n${output}`)), 20_000);
    const check = () => {
      for (const line of output.split("\n")) {
        if (!line.includes('"qumra-agent listening"')) continue;
        clearTimeout(timer);
        return resolve(JSON.parse(line) as { listen: string[]; http?: string; metrics?: string; health?: string });
      }
    };
    child.stdout!.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited with ${code} before listening:\n${output}`));
    });
  });

  return {
    process: child,
    address: listen.find((a) => !a.startsWith("unix:")),
    socket: listen.find((a) => a.startsWith("unix:") && !a.endsWith("-ro.sock"))?.slice(5),
    readOnlySocket: listen.find((a) => a.startsWith("unix:") && a.endsWith("-ro.sock"))?.slice(5),
    listen,
    http,
    metrics,
    health,
    stateDir,
    runtimeDir,
    logs: () => output,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Waits until the agent's output matches `pattern` (its log lines arrive through a pipe, a moment after the fact). */
export async function waitForLog(agent: RunningAgent, pattern: RegExp, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(agent.logs())) {
    if (Date.now() > deadline) throw new Error(`the agent did not log ${pattern} within ${timeoutMs} ms:\n${agent.logs().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Kills (SIGKILL) every helper whose runtime dir is under `runtimeDir`. Stopping an agent leaves its VMs
 * running by design; a test that is done with them calls this so no helper outlives the test run.
 */
export function killHelpersOf(runtimeDir: string): void {
  for (const pid of helpersIn(runtimeDir).keys()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

export function cleanup(...dirs: string[]): void {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

/** The end of a test's agent: stops it, kills the helpers it leaves running, removes its dirs. */
export async function discardAgent(agent: RunningAgent, signal?: NodeJS.Signals): Promise<void> {
  await agent.stop(signal);
  killHelpersOf(agent.runtimeDir);
  cleanup(agent.stateDir, agent.runtimeDir);
}

/** Runs the CLI to completion; resolves with exit code and output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliBin, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}
