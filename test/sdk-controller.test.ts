// The example controller (examples/controller.ts, on qumra/client) against two real agents with real
// demo VMs: it places VMs on the least loaded host, keeps watching while one agent is killed -9 and
// started again over its state dir (its VMs keep running), misses no event, and drains that host.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawn } from "node:child_process";
import path from "node:path";
import { VmState, type QumraClient, type Vm } from "qumra/client";
import { Controller, type Host } from "../examples/controller.js";
import { discardAgent, repoRoot, startAgent, type RunningAgent } from "./helpers/agent.js";
import { hasKvm } from "./helpers/kvm.js";
import { freePort } from "./helpers/ports.js";

async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const states = (vms: Vm[]) => Object.fromEntries(vms.map((v) => [v.vmId, VmState[v.state]]));
const viewOf = (h: Host) => Object.fromEntries([...h.vms].sort(([a], [b]) => a.localeCompare(b)).map(([id, s]) => [id, VmState[s]]));

/**
 * No event was missed on `host`: the watch's view is what ListVms says, the numbered events of each
 * agent instance follow one another without a gap, and each VM's last event number is either the last
 * one delivered for it or covered by a RESYNC's snapshots.
 */
async function assertNothingMissed(host: Host): Promise<void> {
  const vms = await host.client.listVms();
  expect(viewOf(host)).toEqual(states(vms));
  const byInstance = new Map<string, number[]>();
  for (const e of host.events) byInstance.set(e.instanceId, [...(byInstance.get(e.instanceId) ?? []), Number(e.sequence)]);
  for (const [instance, seqs] of byInstance) expect(seqs, `instance ${instance}`).toEqual(seqs.map((_, k) => seqs[0] + k));
  for (const vm of vms) {
    const delivered = host.events.filter((e) => e.vmId === vm.vmId).map((e) => e.sequence);
    const last = delivered.length ? delivered[delivered.length - 1] : -1n;
    const covered = host.resyncs.some((r) => vm.lastEventSequence <= r.sequence) && !delivered.some((s) => s > vm.lastEventSequence);
    expect(vm.lastEventSequence === last || covered, `${vm.vmId}: last event #${vm.lastEventSequence}, delivered ${delivered.join(",")}`).toBe(true);
  }
}

describe.skipIf(!hasKvm)("the example controller against two real agents", () => {
  const agents: { a?: RunningAgent; b?: RunningAgent } = {};
  let argsA: string[];
  let addrA: string;
  let addrB: string;
  beforeAll(async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    addrA = `127.0.0.1:${pa}`;
    addrB = `127.0.0.1:${pb}`;
    argsA = ["--listen", addrA, "--unix", "none"];
    agents.a = await startAgent(argsA);
    agents.b = await startAgent(["--listen", addrB, "--unix", "none"]);
  });
  afterAll(async () => {
    for (const agent of [agents.a, agents.b]) {
      if (!agent) continue;
      await discardAgent(agent);
    }
  });

  test("places 4 VMs 2 + 2, survives kill -9 of one agent without missing an event, drains it onto the other", async () => {
    const lines: string[] = [];
    const controller = new Controller([addrA, addrB], undefined, (l) => lines.push(l));
    try {
      controller.watchAll();
      const [a, b] = [controller.host(addrA), controller.host(addrB)];
      const placed = await controller.place(4, "fleet");
      expect([...placed].map(([id, h]) => `${id}@${h === a ? "a" : "b"}`)).toEqual(["fleet-1@a", "fleet-2@b", "fleet-3@a", "fleet-4@b"]);
      await until("both views show two running VMs", () => [a, b].every((h) => h.vms.size === 2 && [...h.vms.values()].every((s) => s === VmState.VM_STATE_RUNNING)));
      const pidsBefore = (await a.client.listVms()).map((v) => v.helperPid);

      // kill -9 agent a while the controller watches; something happens on b meanwhile.
      await agents.a!.stop("SIGKILL");
      await until("the watch of a reports the loss", () => lines.some((l) => l.startsWith(`[${addrA}] watch lost`)));
      await b.client.pauseVm("fleet-2");
      agents.a = await startAgent(argsA, { stateDir: agents.a!.stateDir, runtimeDir: agents.a!.runtimeDir });
      const instance = (await a.client.getHost()).agent!.instanceId;
      await until("a's watch resynced with the new agent and has its two VMs again", () => a.resyncs.length === 1 && a.vms.size === 2);
      expect(a.resyncs[0].instanceId).toBe(instance);
      // The VMs kept running through the agent's death: the same helpers, re-attached.
      const after = await a.client.listVms();
      expect(after.map((v) => v.helperPid)).toEqual(pidsBefore);
      expect(after.every((v) => v.state === VmState.VM_STATE_RUNNING)).toBe(true);
      // Events on the restarted agent, and more on b, reach the controller.
      await a.client.pauseVm("fleet-1");
      await a.client.resumeVm("fleet-1");
      await b.client.resumeVm("fleet-2");
      await until("views match ListVms", async () => JSON.stringify(viewOf(a)) === JSON.stringify(states(await a.client.listVms())) && JSON.stringify(viewOf(b)) === JSON.stringify(states(await b.client.listVms())));
      await until("the resume on a was delivered", () => a.events.some((e) => e.vmId === "fleet-1" && e.instanceId === instance && e.state === VmState.VM_STATE_RUNNING));
      await assertNothingMissed(a);
      await assertNothingMissed(b);
      // b was never restarted: every number from its first event on, none skipped (the watch started before any).
      expect(b.resyncs).toEqual([]);
      expect(b.events.map((e) => Number(e.sequence))).toEqual(b.events.map((_, k) => k + 1));
      // a: its first instance's events from 1, then the new instance's after the RESYNC.
      expect(new Set(a.events.map((e) => e.instanceId)).size).toBe(2);

      await controller.drain(addrA);
      expect(await a.client.listVms()).toEqual([]);
      const onB = await b.client.listVms();
      expect(onB.map((v) => [v.vmId, VmState[v.state]])).toEqual(["fleet-1", "fleet-2", "fleet-3", "fleet-4"].map((id) => [id, "VM_STATE_RUNNING"]));
      await until("the views follow the drain", () => a.vms.size === 0 && b.vms.size === 4 && [...b.vms.values()].every((s) => s === VmState.VM_STATE_RUNNING));
      await assertNothingMissed(a);
      await assertNothingMissed(b);
      expect(lines).toContain(`moved fleet-1: ${addrA} → ${addrB}`);
    } finally {
      await controller.close();
    }
  }, 180_000);

  test("run as a program (node dist/examples/controller.js): places, drains, prints each host's VMs", async () => {
    const child = spawn(process.execPath, [path.join(repoRoot, "dist", "examples", "controller.js"), "--agent", addrA, "--agent", addrB, "--vms", "2", "--drain", addrA, "--watch-ms", "500"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code, out).toBe(0);
    // b holds the 4 VMs of the first test, so both new ones go to a, and the drain moves them to b.
    expect(out).toContain(`placed demo-1 on ${addrA}`);
    expect(out).toContain(`placed demo-2 on ${addrA}`);
    expect(out).toContain(`moved demo-2: ${addrA} → ${addrB}`);
    expect(out).toMatch(new RegExp(`^${addrA}: \\(empty\\)$`, "m"));
    expect(out).toMatch(/demo-1=RUNNING/);
    expect(out).toMatch(/#\d+ CREATED demo-1 CREATED/);
  }, 120_000);
});
