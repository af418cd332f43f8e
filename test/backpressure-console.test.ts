// Backpressure on real KVM: console attachments that never read cost the agent a bounded amount of
// memory (each has a 1 MiB backlog; a reader that falls behind gets "[qumra: N bytes dropped]"), caps
// on consoles and display viewers per VM answer RESOURCE_EXHAUSTED, and the helper closes a controlling
// client that does not read its replies while the VM keeps running.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import net from "node:net";
import { CpuMode, VmServiceClient, type ConsoleInput, type ConsoleOutput } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceClient } from "../agent/src/gen/qumra/v1/display.js";
import { HelperClient, MAX_IN_FLIGHT } from "../agent/src/vm/helper-client.js";
import { HelperError, fromHelperError } from "../agent/src/vm/helper-errors.js";
import { MsgType, PROTOCOL_VERSION, encodeFrame, encodeReadMemory } from "../agent/src/vm/helper-protocol.js";
import { QumraError } from "../agent/src/errors.js";
import { startAgent, cleanup, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { rssBytes } from "./helpers/proc.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { createVm, demoSpec } from "./helpers/vm.js";
import { floodGuest } from "./helpers/flood-guest.js";
import { reapHelpers, spawnTracked } from "./helpers/helper-vm.js";

const NON_READERS = 20;
/**
 * Each attachment's backlog in this test (the default is 1 MiB): the guest under emulated KVM writes
 * only some tens of KB/s, so a small backlog is what lets the silent attachments reach their bound,
 * and the reader fall behind by more than its backlog, within the test's minute.
 */
const BACKLOG = 64 << 10;
/** The backlogs fill (and the heap settles) before the baseline is taken. */
const WARM_MS = 10_000;
/** How long the agent's RSS is sampled while the 20 attachments do not read. */
const SAMPLE_MS = 40_000;
/**
 * The stated bound on the agent's growth over the sampling: the backlogs are full by then, so what is
 * left is the garbage collector's swings. Unbounded buffering grows by 20 times the guest's output.
 */
const RSS_BOUND = 8 << 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A channel of its own (not shared with other clients), as a separate `qumra vm console` process has. */
function ownClient(address: string): VmServiceClient {
  return new VmServiceClient(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
}

function failureOf(stream: NodeJS.EventEmitter): Promise<grpc.ServiceError> {
  return new Promise((resolve, reject) => {
    stream.on("error", resolve);
    stream.on("end", () => reject(new Error("the stream ended without an error")));
  });
}

describe.skipIf(!hasKvm)("backpressure on real KVM", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    agent = await startAgent(["--max-consoles-per-vm", String(NON_READERS + 1), "--max-viewers-per-vm", "2", "--console-backlog", String(BACKLOG)]);
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    vms?.close();
    await agent?.stop();
    if (agent) killHelpersOf(agent.runtimeDir);
    if (agent) cleanup(agent.stateDir, agent.runtimeDir);
    reapHelpers();
  });

  it("20 consoles that never read on a flooding guest keep the agent's RSS bounded; a reader that falls behind sees the drop marker; one attachment too many is RESOURCE_EXHAUSTED", async () => {
    const vmId = "flood";
    await createVm(vms, vmId, {
      name: vmId,
      vcpus: 1,
      cpuWeight: 0,
      memoryBytes: 4n << 20n,
      boot: { $case: "flatImage", value: { image: floodGuest(), loadAddress: 0x200000n, entryAddress: 0n, mode: CpuMode.CPU_MODE_LONG } },
      labels: {},
      imageCompression: 0,
    });
    const produced = async () => Number((await call(vms, vms.getVmStats, { vmId })).consoleBytes);

    // The attachments that never read, each on its own connection; nothing listens to their data.
    const silent: grpc.ClientDuplexStream<ConsoleInput, ConsoleOutput>[] = [];
    for (let i = 0; i < NON_READERS; i++) {
      const c = ownClient(agent.address!);
      clients.push(c);
      const s = c.attachConsole();
      s.on("error", () => undefined);
      s.write({ vmId, data: Buffer.alloc(0) });
      silent.push(s);
    }
    // The reader: it reads, stops reading for the whole sampling, then reads again.
    const readerClient = ownClient(agent.address!);
    clients.push(readerClient);
    const reader = readerClient.attachConsole();
    let seen = "";
    reader.on("data", (m: ConsoleOutput) => (seen += Buffer.from(m.data).toString("latin1")));
    reader.on("error", () => undefined);
    reader.write({ vmId, data: Buffer.alloc(0) });
    while (!seen.includes("0123456789.\n")) await sleep(50);

    // One more than the cap (20 silent + 1 reader = 21).
    const extra = ownClient(agent.address!);
    clients.push(extra);
    const refused = extra.attachConsole();
    refused.write({ vmId, data: Buffer.alloc(0) });
    const err = await failureOf(refused);
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/21 attachments.*--max-consoles-per-vm/);
    expect(err.details).toContain("start the agent with a higher --max-consoles-per-vm");

    reader.pause();
    const pausedAt = await produced();
    await sleep(WARM_MS);
    const baseline = rssBytes(agent.process.pid!);
    const samples: number[] = [];
    const startBytes = await produced();
    for (const end = Date.now() + SAMPLE_MS; Date.now() < end; ) {
      await sleep(1000);
      samples.push(rssBytes(agent.process.pid!));
    }
    const floodBytes = (await produced()) - startBytes;
    const peak = Math.max(...samples);
    console.log(
      `flood ${(floodBytes / 1e6).toFixed(1)} MB in ${SAMPLE_MS / 1000} s (${NON_READERS} silent attachments would have buffered ${((floodBytes * NON_READERS) / 1e6).toFixed(0)} MB unbounded); ` +
        `agent RSS ${(baseline / 2 ** 20).toFixed(0)} MiB at the start, peak ${(peak / 2 ** 20).toFixed(0)} MiB (+${((peak - baseline) / 2 ** 20).toFixed(1)} MiB, bound +${RSS_BOUND / 2 ** 20} MiB); ` +
        `samples (MiB): ${samples.map((r) => (r / 2 ** 20).toFixed(0)).join(" ")}`,
    );
    // The flood was big enough that buffering it per attachment would have broken the bound.
    expect(floodBytes * NON_READERS).toBeGreaterThan(RSS_BOUND);
    expect(peak - baseline).toBeLessThan(RSS_BOUND);

    // The paused reader is far behind (more than its backlog); once it reads again it sees the marker.
    while ((await produced()) - pausedAt < 4 * BACKLOG + (1 << 20)) await sleep(500);
    const before = seen.length;
    reader.resume();
    for (let i = 0; i < 600 && !/\[qumra: \d+ bytes dropped\]/.test(seen.slice(before)); i++) await sleep(50);
    const marker = /\[qumra: (\d+) bytes dropped\]\r\n/.exec(seen.slice(before));
    expect(marker, `no drop marker in ${JSON.stringify(seen.slice(before, before + 200))}`).not.toBeNull();
    expect(Number(marker![1])).toBeGreaterThan(0);
    // After the marker comes the newest output, whole lines of the guest's text.
    while (seen.length - before - marker!.index < 4096) await sleep(50);
    expect(seen.slice(before + marker!.index + marker![0].length)).toMatch(/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789\.\n/);

    // The agent still answers promptly, and the VM still runs.
    expect((await call(vms, vms.getVm, { vmId })).helperPid).toBeGreaterThan(0);
    for (const s of silent) s.cancel();
    reader.cancel();
    await call(vms, vms.deleteVm, { vmId, force: true });
  }, 120_000);

  it("display viewers per VM are capped: one more is RESOURCE_EXHAUSTED naming --max-viewers-per-vm", async () => {
    const vmId = "viewed";
    await createVm(vms, vmId, demoSpec(vmId, { display: { width: 320, height: 200 } }));
    const display = new DisplayServiceClient(agent.address!, grpc.credentials.createInsecure());
    clients.push(display);
    const open = [0, 1].map(() => display.streamDisplay({ vmId, imageCompression: 0, maxFps: 5 }));
    // Each has its first update (its keyframe) before the third asks.
    await Promise.all(open.map((s) => new Promise<void>((resolve, reject) => (s.once("data", () => resolve()), s.once("error", reject)))));
    const third = display.streamDisplay({ vmId, imageCompression: 0, maxFps: 5 });
    const err = await failureOf(third);
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/2 display viewers.*--max-viewers-per-vm/);
    // A viewer that leaves frees its place.
    const gone = new Promise<void>((resolve) => open[0].on("error", () => resolve()));
    open[0].cancel();
    await gone;
    let again: grpc.ClientReadableStream<unknown> | undefined;
    for (let i = 0; i < 100; i++) {
      const s = display.streamDisplay({ vmId, imageCompression: 0, maxFps: 5 });
      const first = await new Promise<"data" | grpc.ServiceError>((resolve) => (s.once("data", () => resolve("data")), s.once("error", resolve)));
      if (first === "data") {
        again = s;
        break;
      }
      expect(first.code).toBe(grpc.status.RESOURCE_EXHAUSTED); // the old one may not be detached yet
      await sleep(50);
    }
    expect(again).toBeDefined();
    again!.cancel();
    open[1].cancel();
    await call(vms, vms.deleteVm, { vmId, force: true });
  }, 60_000);

  it("the helper closes a controlling client that does not read (1500 READ_MEM of 1 MiB), its memory stays bounded, and the VM keeps running", async () => {
    const { h } = await spawnTracked("qvmm-bp-", { demo: true, vcpus: 1, memoryBytes: 32 << 20 });
    const first = await HelperClient.connect(h.controlPath, { secret: h.secret });
    await first.start();
    first.close();

    // A controller with the secret that asks for 1.5 GB and reads nothing (the socket is never read).
    const raw = net.createConnection({ path: h.controlPath });
    raw.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => (raw.once("connect", resolve), raw.once("error", reject)));
    const closed = new Promise<void>((resolve) => raw.once("close", () => resolve()));
    raw.pause();
    raw.write(encodeFrame(MsgType.HELLO, 0, 1, Buffer.from(JSON.stringify({ version: PROTOCOL_VERSION, secret: h.secret }))));
    for (let id = 2; id < 1502; id++) raw.write(encodeFrame(MsgType.READ_MEM, 0, id, encodeReadMemory(0, 1 << 20)));
    const baseline = rssBytes(h.pid);
    let peak = baseline;
    let isClosed = false;
    void closed.then(() => (isClosed = true));
    for (let i = 0; i < 300 && !isClosed; i++) {
      peak = Math.max(peak, rssBytes(h.pid));
      await sleep(100);
    }
    expect(isClosed, "the helper did not close the non-reading client within 30 s").toBe(true);
    console.log(`helper RSS ${(baseline / 2 ** 20).toFixed(0)} MiB at the start, peak ${(peak / 2 ** 20).toFixed(0)} MiB while 1500 MiB of replies were asked for`);
    expect(peak - baseline).toBeLessThan(32 << 20); // 8 MiB backlog + one reply + slack, not 1.5 GB
    expect(readFileSync(h.logPath, "utf8")).toMatch(/controlling client (has read nothing|does not read)/);

    // The VM kept running; an agent that reads promptly pipelines 16 MiB of replies (past the helper's
    // high water, so the helper's flow control, not a drop) and is not dropped,
    // and past MAX_IN_FLIGHT requests the agent's own client refuses (RESOURCE_EXHAUSTED) instead of queueing.
    const c = await HelperClient.connect(h.controlPath, { secret: h.secret });
    expect((await c.status()).state).toBe("running");
    const n = MAX_IN_FLIGHT + 44;
    const results = await Promise.allSettled(Array.from({ length: n }, () => c.readMemory(0, 64 << 10)));
    const ok = results.filter((r) => r.status === "fulfilled");
    const busy = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(ok).toHaveLength(MAX_IN_FLIGHT);
    expect(busy).toHaveLength(44);
    expect(busy.every((r) => r.reason instanceof HelperError && r.reason.code === "BUSY")).toBe(true);
    const mapped = fromHelperError(busy[0].reason);
    expect(mapped instanceof QumraError && mapped.kind).toBe("resource-exhausted");
    expect(c.closed).toBe(false);
    expect((await c.readMemory(0, 16)).length).toBe(16);
    expect((await c.status()).state).toBe("running");
    c.close();
  }, 90_000);
});
