// A bounded, seeded soak of crash-consistent state: random creates (some retried with their request
// id), starts, stops, deletes, console and display clients that never read, kill -9 of helpers and of
// the agent at random points. At the end the agent's view equals the helpers that run: one helper per
// live VM, none for the others, none without a VM, no runtime dir or state folder of a VM that is gone,
// and the agent's RSS within a bound. QUMRA_SOAK_SEED picks another run.
import { describe, it, expect, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { readdirSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, VmState, type Vm } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceClient } from "../agent/src/gen/qumra/v1/display.js";
import { startAgent, cleanup, killHelpersOf, tempDir, type RunningAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { demoSpec } from "./helpers/vm.js";
import { helpersIn, rssBytes } from "./helpers/proc.js";
import { seededRandom } from "./helpers/random.js";

const SEED = Number(process.env.QUMRA_SOAK_SEED ?? 15);
const OPS = 160;
/** The agent's RSS at the end may not pass this (it starts near 100 MiB; clients that never read must not grow it). */
const RSS_BOUND_MIB = 400;
/** Clients that never read, kept open at once (the oldest is closed past this). */
const MAX_IDLE_CLIENTS = 24;
const LIVE = [VmState.VM_STATE_CREATED, VmState.VM_STATE_RUNNING, VmState.VM_STATE_PAUSED];

describe.skipIf(!hasKvm)(`state soak (seed ${SEED})`, () => {
  const stateDir = tempDir("soak-state");
  const runtimeDir = tempDir("soak-run");
  let agent: RunningAgent | undefined;
  afterAll(async () => {
    await agent?.stop();
    killHelpersOf(runtimeDir);
    cleanup(stateDir, runtimeDir);
  });

  it("ends with the agent's view equal to the helpers that run, no orphans, no leaked dirs", async () => {
    const random = seededRandom(SEED);
    const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
    const ids = Array.from({ length: 12 }, (_, i) => `soak-${i}`);
    const requests = new Map<string, string>();
    let vms!: VmServiceClient;
    let display!: DisplayServiceClient;
    const idle: grpc.ClientReadableStream<unknown>[] = [];
    const boot = async () => {
      agent = await startAgent([], { stateDir, runtimeDir });
      vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
      display = new DisplayServiceClient(agent.address!, grpc.credentials.createInsecure());
    };
    /** A stream nobody reads: no 'data' listener, so grpc-js leaves it paused and the agent must hold back. */
    const openIdle = (stream: grpc.ClientReadableStream<unknown>) => {
      stream.on("error", () => undefined);
      idle.push(stream);
      if (idle.length > MAX_IDLE_CLIENTS) idle.shift()!.cancel();
    };
    await boot();
    const counts: Record<string, number> = {};
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < OPS; i++) {
      const r = random();
      const id = pick(ids);
      let op: string;
      let p: Promise<unknown> | undefined;
      if (r < 0.03) {
        op = "kill-agent";
        agent!.process.kill("SIGKILL");
        await agent!.stop();
        await Promise.allSettled(inFlight);
        vms.close();
        display.close();
        await boot();
      } else if (r < 0.08) {
        op = "kill-helper";
        const running = [...helpersIn(runtimeDir).keys()];
        if (running.length) process.kill(pick(running), "SIGKILL");
      } else if (r < 0.36) {
        op = "create";
        // A retry keeps its request id; a new create of a deleted id takes a new one.
        if (!requests.has(id) || random() < 0.3) requests.set(id, randomUUID());
        p = call(vms, vms.createVm, { vmId: id, requestId: requests.get(id)!, spec: demoSpec(id) }, 60_000);
      } else if (r < 0.54) {
        op = "start";
        p = call(vms, vms.startVm, { vmId: id }, 60_000);
      } else if (r < 0.7) {
        op = "stop";
        p = call(vms, vms.stopVm, { vmId: id, force: true, timeoutMs: 0 }, 60_000);
      } else if (r < 0.84) {
        op = "delete";
        p = call(vms, vms.deleteVm, { vmId: id, force: true }, 60_000).then(() => requests.delete(id));
      } else if (r < 0.92) {
        op = "console";
        const consoleStream = vms.attachConsole();
        // AttachConsole is bidirectional: its first message names the VM.
        consoleStream.write({ vmId: id, data: Buffer.alloc(0) });
        openIdle(consoleStream);
      } else {
        op = "display";
        openIdle(display.streamDisplay({ vmId: id, imageCompression: 0, maxFps: 30 }));
      }
      counts[op] = (counts[op] ?? 0) + 1;
      if (p) {
        const tracked = p.catch(() => undefined);
        inFlight.add(tracked);
        void tracked.then(() => inFlight.delete(tracked));
        // At most 4 calls at once; sometimes wait for all, so operations also run one after another.
        if (inFlight.size >= 4 || random() < 0.2) await Promise.race(inFlight);
      }
    }
    await Promise.allSettled(inFlight);
    expect(counts["kill-agent"] ?? 0, JSON.stringify(counts)).toBeGreaterThan(0);

    // Settle: helpers killed recently are noticed (CRASHED) within the link's reconnect window.
    const deadline = Date.now() + 30_000;
    let problems: string[] = [];
    for (;;) {
      const { vms: list } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
      problems = invariantProblems(list, runtimeDir, stateDir);
      if (problems.length === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(problems, `seed ${SEED}, ops ${JSON.stringify(counts)}`).toEqual([]);
    const rssMiB = rssBytes(agent!.process.pid!) / (1 << 20);
    console.log(`state soak seed ${SEED}: ${JSON.stringify(counts)}; ${idle.length} idle clients open; agent RSS ${rssMiB.toFixed(1)} MiB`);
    expect(rssMiB).toBeLessThan(RSS_BOUND_MIB);
    for (const c of idle.splice(0)) c.cancel();

    // And a last restart changes none of it.
    agent!.process.kill("SIGKILL");
    await agent!.stop();
    vms.close();
    await boot();
    const { vms: after } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
    expect(invariantProblems(after, runtimeDir, stateDir)).toEqual([]);
    vms.close();
    display.close();
  }, 280_000);
});

function invariantProblems(list: Vm[], runtimeDir: string, stateDir: string): string[] {
  const problems: string[] = [];
  const helpers = new Map<string, number[]>();
  for (const [pid, dir] of helpersIn(runtimeDir)) helpers.set(path.basename(dir), [...(helpers.get(path.basename(dir)) ?? []), pid]);
  const listed = new Set(list.map((v) => v.vmId));
  for (const vm of list) {
    const pids = helpers.get(vm.vmId) ?? [];
    if (LIVE.includes(vm.state)) {
      if (pids.length !== 1 || pids[0] !== vm.helperPid) problems.push(`${vm.vmId} is ${VmState[vm.state]} with helper ${vm.helperPid}, but helpers ${JSON.stringify(pids)} run`);
    } else if (pids.length) problems.push(`${vm.vmId} is ${VmState[vm.state]} but helpers ${JSON.stringify(pids)} run`);
  }
  for (const name of helpers.keys()) if (!listed.has(name)) problems.push(`helper of ${name} runs with no VM`);
  const runtimeDirs = readdirSync(runtimeDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  for (const name of runtimeDirs) if (!listed.has(name)) problems.push(`runtime dir ${name} leaked`);
  for (const name of readdirSync(path.join(stateDir, "vms"))) if (!listed.has(name)) problems.push(`state folder ${name} leaked`);
  return problems;
}
