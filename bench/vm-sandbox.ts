// qumra bench vm --sandbox: the cost of the helper sandbox. Two agents of the benchmark's own, one with
// --vmm-sandbox on and one with off, run the same `bench vm` measurements (create→running, port exits
// per second) in the same run, alternating so that neither gets a quieter host; the ratios are on/off.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { packageRoot } from "../agent/src/paths.js";
import type { Teardown } from "./teardown.js";
import { runVmBench, type VmBenchResult } from "./vm.js";
import { median, round, type Progress } from "./stats.js";

export interface VmSandboxBenchOptions {
  vms: number;
  exitRuns: number;
  /** Alternating rounds of (on, off); the figures are the medians of the rounds' own medians/percentiles. */
  rounds: number;
}

export interface VmSandboxBenchResult {
  on: VmBenchResult;
  off: VmBenchResult;
  /** on / off: above 1 the sandbox costs time (latency) — below 1 it costs throughput (exits/s). */
  ratio: { createToRunningP50: number; createToRunningP99: number; exitsPerSecond: number };
}

/** Starts a qumra-agent with `args` on an ephemeral port; resolves with its gRPC address. */
async function startAgent(label: string, args: string[], teardown: Teardown): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `qumra-bench-${label}-`));
  teardown.add(`agent (${label}) dirs`, () => rmSync(dir, { recursive: true, force: true }));
  const argv = [path.join(packageRoot, "bin", "qumra-agent.js"), "--listen", "127.0.0.1:0", "--state-dir", path.join(dir, "state"), "--runtime-dir", path.join(dir, "run"), ...args];
  // Own process group: a Ctrl-C must not stop the agent before teardown deleted its VMs through it.
  const child = teardown.child(`qumra-agent (${label})`, spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"], detached: true }));
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`qumra-agent (${label}) did not start within 20 s:\n${output}`)), 20_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const line = output.split("\n").find((l) => l.includes('"qumra-agent listening"'));
      if (!line) return;
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      resolve((JSON.parse(line) as { listen: string[] }).listen.find((a) => !a.startsWith("unix:"))!);
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`qumra-agent (${label}) exited with ${code} before listening: ${output.trim().split("\n").at(-1)}`));
    });
  });
}

/** One result of several rounds: the median of each figure. */
function combine(rs: VmBenchResult[]): VmBenchResult {
  const m = (f: (r: VmBenchResult) => number) => round(median(rs.map(f)));
  return {
    createToRunningMs: { p50: m((r) => r.createToRunningMs.p50), p99: m((r) => r.createToRunningMs.p99), runs: rs.reduce((n, r) => n + r.createToRunningMs.runs, 0) },
    createToFirstOutputMs: { p50: m((r) => r.createToFirstOutputMs.p50), p99: m((r) => r.createToFirstOutputMs.p99) },
    exitsPerSecond: {
      helper: Math.round(median(rs.map((r) => r.exitsPerSecond.helper))),
      bare: Math.round(median(rs.map((r) => r.exitsPerSecond.bare))),
      ratio: m((r) => r.exitsPerSecond.ratio),
      exitsPerRun: rs[0].exitsPerSecond.exitsPerRun,
      runs: rs.reduce((n, r) => n + r.exitsPerSecond.runs, 0),
    },
    helperRssBytes: median(rs.map((r) => r.helperRssBytes)),
  };
}

export async function runVmSandboxBench(options: VmSandboxBenchOptions, progress: Progress, teardown: Teardown): Promise<VmSandboxBenchResult> {
  const targets = { on: await startAgent("sandbox-on", ["--vmm-sandbox", "on"], teardown), off: await startAgent("sandbox-off", ["--vmm-sandbox", "off"], teardown) };
  const results: { on: VmBenchResult[]; off: VmBenchResult[] } = { on: [], off: [] };
  const quiet: Progress = { start: () => undefined, increment: () => undefined, stop: () => undefined };
  progress.start(options.rounds * 2, "vm --sandbox");
  for (let round_ = 0; round_ < options.rounds; round_++) {
    // Alternate which goes first, so a warming (or cooling) host favours neither.
    for (const which of round_ % 2 ? (["off", "on"] as const) : (["on", "off"] as const)) {
      results[which].push(await runVmBench({ target: targets[which], credentials: grpc.credentials.createInsecure(), vms: options.vms, exitRuns: options.exitRuns }, quiet));
      progress.increment();
    }
  }
  progress.stop();
  const on = combine(results.on);
  const off = combine(results.off);
  return {
    on,
    off,
    ratio: {
      createToRunningP50: round(on.createToRunningMs.p50 / off.createToRunningMs.p50, 3),
      createToRunningP99: round(on.createToRunningMs.p99 / off.createToRunningMs.p99, 3),
      exitsPerSecond: round(on.exitsPerSecond.helper / off.exitsPerSecond.helper, 3),
    },
  };
}
