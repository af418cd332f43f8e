// qumra bench api: unary call latency (p50/p99) and calls/s against an agent on loopback, with many
// concurrent clients. Yardstick: grpc.health.v1 Check, the cheapest call through the same server, measured
// in the same run, so the ratio shows what qumra's own handlers add.
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { percentile, round, type Progress } from "./stats.js";

export interface ApiBenchOptions {
  target: string;
  credentials: grpc.ChannelCredentials;
  /** Concurrent clients, each with its own channel. */
  clients: number;
  /** Calls per method across all clients. */
  calls: number;
}

export interface ApiBenchRow {
  method: string;
  calls: number;
  clients: number;
  p50Ms: number;
  p99Ms: number;
  callsPerSecond: number;
  /** This method's p50 divided by the yardstick's p50 (1 for the yardstick itself). */
  p50VsHealth: number;
}

type Caller = (done: (err: Error | null) => void) => void;

const HealthClient = grpc.makeGenericClientConstructor(healthService, "Health");

export async function runApiBench(options: ApiBenchOptions, progress: Progress): Promise<ApiBenchRow[]> {
  const channels = Array.from({ length: options.clients }, () => ({
    health: new HealthClient(options.target, options.credentials, { "grpc.use_local_subchannel_pool": 1 }),
    vm: new VmServiceClient(options.target, options.credentials, { "grpc.use_local_subchannel_pool": 1 }),
  }));
  try {
    const methods: [string, (i: number) => Caller][] = [
      ["grpc.health.v1.Health/Check (yardstick)", (i) => (done) => (channels[i].health as any).check({ service: "" }, done)],
      ["qumra.v1.VmService/ListVms", (i) => (done) => channels[i].vm.listVms({ state: 0, labelSelector: {} }, done)],
      ["qumra.v1.VmService/GetVm (NOT_FOUND)", (i) => (done) => channels[i].vm.getVm({ vmId: "bench-no-such-vm" }, (err) => done(err?.code === grpc.status.NOT_FOUND ? null : err))],
    ];
    progress.start(methods.length * options.calls, "api");
    const rows: ApiBenchRow[] = [];
    for (const [name, make] of methods) {
      // Warm up every channel (connection, HTTP/2 settings, JIT) before measuring.
      await Promise.all(channels.map((_, i) => runCalls(make(i), 20, [])));
      const latencies: number[] = [];
      const perClient = Math.ceil(options.calls / options.clients);
      const started = performance.now();
      await Promise.all(channels.map((_, i) => runCalls(make(i), perClient, latencies, () => progress.increment())));
      const seconds = (performance.now() - started) / 1000;
      rows.push({
        method: name,
        calls: latencies.length,
        clients: options.clients,
        p50Ms: round(percentile(latencies, 50), 3),
        p99Ms: round(percentile(latencies, 99), 3),
        callsPerSecond: Math.round(latencies.length / seconds),
        p50VsHealth: 1,
      });
    }
    progress.stop();
    for (const row of rows) row.p50VsHealth = round(row.p50Ms / rows[0].p50Ms, 2);
    return rows;
  } finally {
    for (const c of channels) {
      c.health.close();
      c.vm.close();
    }
  }
}

async function runCalls(call: Caller, count: number, latencies: number[], onCall?: () => void): Promise<void> {
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => call((err) => (err ? reject(err) : resolve())));
    latencies.push(performance.now() - started);
    onCall?.();
  }
}
