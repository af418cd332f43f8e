// qumra bench api: unary call latency (p50/p99) and calls/s against an agent on loopback, with many
// concurrent clients. Yardstick: grpc.health.v1 Check, the cheapest call through the same server, measured
// in the same run, so the ratio shows what qumra's own handlers add. With --under-display N, the same
// calls against an agent of its own while N viewers stream full-screen changes, against that agent idle.
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { service as healthService } from "grpc-health-check";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceClient, ImageCompression } from "../agent/src/gen/qumra/v1/display.js";
import type { LoadAgentOptions } from "./display-load-agent.js";
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

// ---- under display load ----

export interface UnderDisplayOptions {
  /** Viewers (and displays): each streams its own full-screen-changing display. */
  displays: number;
  clients: number;
  calls: number;
  width: number;
  height: number;
  /** Full-screen pictures per second per display, and the viewers' max_fps. */
  fps: number;
  /** The agent's --display-workers (the encode pool). */
  workers: number;
}

export interface UnderDisplayRow extends ApiBenchRow {
  /** "idle", or what streamed meanwhile. */
  load: string;
  /** This row's p99 over the idle p99 of the same method, measured in the same run. */
  p99VsIdle: number;
  /** Display updates the viewers received per second meanwhile (0 when idle). */
  displayUpdatesPerSecond: number;
}

/**
 * Unary latency of a real agent (bench/display-load-agent.ts) while `displays` viewers stream
 * full-screen changes, against the same agent idle, and against the same load encoded on the agent's
 * main thread (--display-workers 0): the yardstick that shows what the encode pool buys.
 */
export async function runApiUnderDisplayBench(o: UnderDisplayOptions, progress: Progress): Promise<UnderDisplayRow[]> {
  const rows: UnderDisplayRow[] = [];
  const loads: [string, number][] = [[`${o.displays} viewers, ${o.workers} encode worker(s)`, o.workers]];
  if (o.workers !== 0) loads.push([`${o.displays} viewers, on the main thread`, 0]);
  for (const [index, [load, workers]] of loads.entries()) {
    const agent = await startLoadAgent({ displays: o.displays, width: o.width, height: o.height, fps: o.fps, workers });
    try {
      const measure = (): Promise<ApiBenchRow[]> => runApiBench({ target: agent.target, credentials: grpc.credentials.createInsecure(), clients: o.clients, calls: o.calls }, progress);
      if (index === 0) {
        for (const r of await measure()) rows.push({ ...r, load: "idle", p99VsIdle: 1, displayUpdatesPerSecond: 0 });
      }
      agent.command("draw");
      const viewers = await watchDisplays(agent.target, o.displays, o.fps);
      const started = performance.now();
      const under = await measure();
      const updatesPerSecond = Math.round(viewers.updates() / ((performance.now() - started) / 1000));
      viewers.close();
      agent.command("stop");
      for (const r of under) {
        const idle = rows.find((i) => i.method === r.method && i.load === "idle")!;
        rows.push({ ...r, load, p99VsIdle: round(r.p99Ms / idle.p99Ms, 2), displayUpdatesPerSecond: updatesPerSecond });
      }
    } finally {
      await agent.stop();
    }
  }
  return rows;
}

interface LoadAgent {
  target: string;
  command(line: "draw" | "stop"): void;
  stop(): Promise<void>;
}

async function startLoadAgent(options: LoadAgentOptions): Promise<LoadAgent> {
  const fromSource = import.meta.url.endsWith(".ts");
  const script = fileURLToPath(new URL(fromSource ? "./display-load-agent.ts" : "./display-load-agent.js", import.meta.url));
  const child = spawn(process.execPath, [...(fromSource ? ["--import", "tsx"] : []), script, JSON.stringify(options)], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const target = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve((JSON.parse(line) as { listen: string }).listen);
    });
    child.once("exit", (code) => reject(new Error(`the display-load agent exited with ${code} before listening`)));
  });
  return {
    target,
    command: (line) => child.stdin!.write(`${line}\n`),
    stop: async () => {
      child.stdin!.end();
      await exited;
    },
  };
}

/** `n` StreamDisplay viewers of load-0..load-(n-1); they count updates and drop them (no decoding here). */
async function watchDisplays(target: string, n: number, fps: number): Promise<{ updates(): number; close(): void }> {
  const client = new DisplayServiceClient(target, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 64 << 20 });
  let updates = 0;
  const streams = Array.from({ length: n }, (_, i) => client.streamDisplay({ vmId: `load-${i}`, imageCompression: ImageCompression.IMAGE_COMPRESSION_AUTO_GLZ, maxFps: fps }));
  // Wait for every keyframe, so the measurement runs with every stream flowing.
  await Promise.all(streams.map((s) => new Promise<void>((resolve, reject) => {
    s.once("data", () => resolve());
    s.on("error", (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
  })));
  for (const s of streams) s.on("data", () => updates++);
  return {
    updates: () => updates,
    close: () => {
      for (const s of streams) s.cancel();
      client.close();
    },
  };
}
