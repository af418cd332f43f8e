// qumra bench vm: (1) create→running latency through gRPC, and create→first serial byte; (2) guest
// I/O-port exits per second through qumra-vmm divided by those of a bare KVM_RUN loop
// (native/build/kvm-exit-loop, bench/kvm-exit-loop.c) running the same instruction in the same run;
// (3) the helper's resident memory per VM.
import * as grpc from "@grpc/grpc-js";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { VmServiceClient, type GetVmStatsRequest, type VmStats } from "../agent/src/gen/qumra/v1/vm.js";
import { openConsole } from "./console-reader.js";
import { packageRoot } from "../agent/src/paths.js";
import { median, percentile, round, type Progress } from "./stats.js";

export interface VmBenchOptions {
  target: string;
  credentials: grpc.ChannelCredentials;
  /** VMs created one after another for the latency figures. */
  vms: number;
  /** Port exits per exit-rate run (the demo guest does 100000 per 'b' key). */
  exitRuns: number;
}

export interface VmBenchResult {
  createToRunningMs: { p50: number; p99: number; runs: number };
  createToFirstOutputMs: { p50: number; p99: number };
  exitsPerSecond: { helper: number; bare: number; ratio: number; exitsPerRun: number; runs: number };
  helperRssBytes: number;
}

const EXITS_PER_KEY = 100_000;

function unary<Req, Res>(fn: (req: Req, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res))));
}

export async function runVmBench(options: VmBenchOptions, progress: Progress): Promise<VmBenchResult> {
  const client = new VmServiceClient(options.target, options.credentials);
  const prefix = `bench-${randomUUID().slice(0, 8)}`;
  const created: string[] = [];
  try {
    progress.start(options.vms + options.exitRuns + 1, "vm");
    const toRunning: number[] = [];
    const toOutput: number[] = [];
    for (let i = 0; i < options.vms; i++) {
      const vmId = `${prefix}-${i}`;
      const started = performance.now();
      await unary(client.createVm.bind(client), { vmId, requestId: randomUUID(), spec: { name: vmId, vcpus: 1, memoryBytes: 32n << 20n, boot: { $case: "demo", value: {} }, labels: {}, imageCompression: 0, cpuWeight: 0 } });
      created.push(vmId);
      const console = openConsole(client, vmId);
      await unary(client.startVm.bind(client), { vmId });
      toRunning.push(performance.now() - started);
      await console.waitFor("qumra demo guest");
      toOutput.push(performance.now() - started);
      console.close();
      if (i > 0) await unary(client.deleteVm.bind(client), { vmId: created.shift()!, force: true });
      progress.increment();
    }

    // The exit rate: the demo guest's 'b' key runs 100000 `out` instructions to the bench port.
    const vmId = created[0];
    const console = openConsole(client, vmId);
    const helperRates: number[] = [];
    for (let run = 0; run < options.exitRuns; run++) {
      const mark = console.text().length;
      const started = performance.now();
      console.send("b");
      await console.waitFor(`exits done ${EXITS_PER_KEY}`, 120_000, mark);
      helperRates.push(EXITS_PER_KEY / ((performance.now() - started) / 1000));
      progress.increment();
    }
    console.close();
    const bareRates: number[] = [];
    const bareBin = path.join(packageRoot, "native", "build", "kvm-exit-loop");
    for (let run = 0; run < options.exitRuns; run++) {
      bareRates.push((JSON.parse(execFileSync(bareBin, [String(EXITS_PER_KEY)]).toString()) as { exitsPerSecond: number }).exitsPerSecond);
    }
    const stats = await unary<GetVmStatsRequest, VmStats>(client.getVmStats.bind(client), { vmId });
    progress.increment();
    progress.stop();

    const helper = median(helperRates);
    const bare = median(bareRates);
    return {
      createToRunningMs: { p50: round(percentile(toRunning, 50)), p99: round(percentile(toRunning, 99)), runs: toRunning.length },
      createToFirstOutputMs: { p50: round(percentile(toOutput, 50)), p99: round(percentile(toOutput, 99)) },
      exitsPerSecond: { helper: Math.round(helper), bare: Math.round(bare), ratio: round(helper / bare, 3), exitsPerRun: EXITS_PER_KEY, runs: options.exitRuns },
      helperRssBytes: Number(stats.helperRssBytes),
    };
  } finally {
    await Promise.all(created.map((vmId) => unary(client.deleteVm.bind(client), { vmId, force: true }).catch(() => undefined)));
    client.close();
  }
}
