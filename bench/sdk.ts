// qumra bench sdk: what the client SDK (qumra/client) adds to a call, against the generated grpc-js
// client calling the same agent over its own channel in the same run (the yardstick). Per method:
// closed-loop latency (one call in flight) and calls/s with many in flight on one channel. Raw and SDK
// rounds alternate so drift on a shared machine hits both alike.
import * as grpc from "@grpc/grpc-js";
import { HostServiceClient } from "../agent/src/gen/qumra/v1/host.js";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { connect, NotFoundError, type ConnectOptions } from "../client/index.js";
import { median, percentile, round, type Progress } from "./stats.js";

export interface SdkBenchOptions {
  /** The gRPC target and credentials of the yardstick, and the same agent as the SDK sees it. */
  target: string;
  credentials: grpc.ChannelCredentials;
  connect: ConnectOptions;
  /** Calls per method per side per round (closed loop). */
  calls: number;
  /** Calls in flight for the throughput figure. */
  concurrency: number;
  rounds: number;
}

export interface SdkBenchRow {
  method: string;
  calls: number;
  rawP50Ms: number;
  sdkP50Ms: number;
  rawP99Ms: number;
  sdkP99Ms: number;
  /** sdk p50 / raw p50 (medians over rounds). */
  p50Ratio: number;
  /** sdk p50 − raw p50 in microseconds: the SDK's own cost per call. */
  overheadUs: number;
  rawCallsPerSecond: number;
  sdkCallsPerSecond: number;
  /** sdk calls/s / raw calls/s. */
  throughputRatio: number;
  /** CPU time of this (client) process per call, user + system, in the calls/s phase: the SDK's cost less the network's noise. */
  rawCpuUsPerCall: number;
  sdkCpuUsPerCall: number;
  cpuRatio: number;
}

type Call = () => Promise<unknown>;

export async function runSdkBench(o: SdkBenchOptions, progress: Progress): Promise<SdkBenchRow[]> {
  const options = { "grpc.use_local_subchannel_pool": 1, "grpc.max_receive_message_length": 64 * 1024 * 1024 };
  const rawVm = new VmServiceClient(o.target, o.credentials, options);
  const rawHost = new HostServiceClient(o.target, o.credentials, { channelOverride: rawVm.getChannel() });
  const sdk = connect({ ...o.connect, channelOptions: { "grpc.use_local_subchannel_pool": 1 } });
  const deadline = () => ({ deadline: Date.now() + 30_000 });
  const unary = <T>(fn: (cb: (err: grpc.ServiceError | null, r: T) => void) => void): Promise<T> =>
    new Promise((resolve, reject) => fn((err, r) => (err ? reject(err) : resolve(r))));
  try {
    // GetVm of a VM that exists when the host has one, else the NOT_FOUND path (the SDK then builds its typed error).
    const vms = await sdk.listVms();
    const vmId = vms[0]?.vmId ?? "bench-no-such-vm";
    const found = vms.length > 0;
    const notFoundOk = (err: unknown) => {
      if (found || !((err as { code?: number }).code === grpc.status.NOT_FOUND || err instanceof NotFoundError)) throw err;
    };
    const methods: [string, Call, Call][] = [
      ["HostService/GetHost", () => unary((cb) => rawHost.getHost({}, new grpc.Metadata(), deadline(), cb)), () => sdk.getHost()],
      ["VmService/ListVms", () => unary((cb) => rawVm.listVms({ state: 0, labelSelector: {} }, new grpc.Metadata(), deadline(), cb)), () => sdk.listVms()],
      [`VmService/GetVm${found ? "" : " (NOT_FOUND)"}`, () => unary((cb) => rawVm.getVm({ vmId }, new grpc.Metadata(), deadline(), cb)).catch(notFoundOk), () => sdk.getVm(vmId).catch(notFoundOk)],
    ];
    progress.start(methods.length * o.rounds * 2 * (o.calls + o.calls), "sdk");
    const rows: SdkBenchRow[] = [];
    for (const [name, raw, viaSdk] of methods) {
      await closedLoop(raw, 50, []);
      await closedLoop(viaSdk, 50, []);
      const lat = { raw: [] as number[], sdk: [] as number[] };
      const p50 = { raw: [] as number[], sdk: [] as number[] };
      const rate = { raw: [] as number[], sdk: [] as number[] };
      const cpu = { raw: [] as number[], sdk: [] as number[] };
      for (let r = 0; r < o.rounds; r++) {
        // Alternate which side goes first.
        const order: ["raw" | "sdk", Call][] = r % 2 === 0 ? [["raw", raw], ["sdk", viaSdk]] : [["sdk", viaSdk], ["raw", raw]];
        for (const [side, call] of order) {
          const l: number[] = [];
          await closedLoop(call, o.calls, l, () => progress.increment());
          lat[side].push(...l);
          p50[side].push(percentile(l, 50));
          const before = process.cpuUsage();
          rate[side].push(await throughput(call, o.calls, o.concurrency, () => progress.increment()));
          const used = process.cpuUsage(before);
          cpu[side].push((used.user + used.system) / o.calls);
        }
      }
      const rawP50 = median(p50.raw);
      const sdkP50 = median(p50.sdk);
      const rawRate = median(rate.raw);
      const sdkRate = median(rate.sdk);
      rows.push({
        method: name,
        calls: lat.sdk.length,
        rawP50Ms: round(rawP50, 3),
        sdkP50Ms: round(sdkP50, 3),
        rawP99Ms: round(percentile(lat.raw, 99), 3),
        sdkP99Ms: round(percentile(lat.sdk, 99), 3),
        p50Ratio: round(sdkP50 / rawP50, 3),
        overheadUs: Math.round((sdkP50 - rawP50) * 1000),
        rawCallsPerSecond: Math.round(rawRate),
        sdkCallsPerSecond: Math.round(sdkRate),
        throughputRatio: round(sdkRate / rawRate, 3),
        rawCpuUsPerCall: round(median(cpu.raw), 1),
        sdkCpuUsPerCall: round(median(cpu.sdk), 1),
        cpuRatio: round(median(cpu.sdk) / median(cpu.raw), 3),
      });
    }
    progress.stop();
    return rows;
  } finally {
    rawVm.close();
    sdk.close();
  }
}

async function closedLoop(call: Call, count: number, latencies: number[], onCall?: () => void): Promise<void> {
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await call();
    latencies.push(performance.now() - started);
    onCall?.();
  }
}

/** Calls/s with `concurrency` calls kept in flight until `count` are done. */
async function throughput(call: Call, count: number, concurrency: number, onCall?: () => void): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      next++;
      await call();
      onCall?.();
    }
  }));
  return count / ((performance.now() - started) / 1000);
}
