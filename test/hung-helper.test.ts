// Hung and dead helpers on real KVM: a SIGSTOPped helper shows as hung, its calls fail at once with the
// reason, and a forced stop or delete ends it by signals within seconds; a re-attached helper killed by
// SIGKILL is reported with that cause; WatchVms answers a sequence it cannot serve with RESYNC.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { existsSync } from "node:fs";
import { VmServiceClient, VmState, VmEventType, type Vm } from "../agent/src/gen/qumra/v1/vm.js";
import { HostServiceClient } from "../agent/src/gen/qumra/v1/host.js";
import { startAgent, cleanup, killHelpersOf, runCli, type RunningAgent } from "./helpers/agent.js";
import { call, callError } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { createVm, waitForState, watch } from "./helpers/vm.js";

const gone = (pid: number) => !existsSync(`/proc/${pid}`);

/** GetVm until it shows the helper hung (at most 5 s). */
async function hungVm(vms: VmServiceClient, vmId: string): Promise<Vm> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const vm = await call(vms, vms.getVm, { vmId });
    if (vm.health?.hung || Date.now() > deadline) return vm;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!hasKvm)("a SIGSTOPped helper", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;

  beforeAll(async () => {
    agent = await startAgent();
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    vms.close();
    await agent.stop();
    killHelpersOf(agent.runtimeDir);
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("shows as hung in GetVm, its calls fail at once naming it, and `vm delete --force` ends it within 5 s", async () => {
    const vm = await createVm(vms, "frozen");
    process.kill(vm.helperPid, "SIGSTOP");

    const seen = await hungVm(vms, "frozen"); // the stop is delivered asynchronously
    expect(seen.state).toBe(VmState.VM_STATE_RUNNING); // the state stays; the health says why nothing answers
    expect(seen.health).toMatchObject({ hung: true, reason: expect.stringContaining(`helper pid ${vm.helperPid} is stopped`) });
    expect(seen.health!.since).toBeInstanceOf(Date);
    const get = await runCli(["--host", agent.address!, "vm", "get", "frozen"]);
    expect(get.stdout).toMatch(/helper:\s+HUNG since .*is stopped/);

    const began = Date.now();
    const err = await callError(vms, vms.readMemory, { vmId: "frozen", address: 0x8000n, length: 8 });
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toMatch(new RegExp(`helper pid ${vm.helperPid} is stopped .*with force`));
    expect(Date.now() - began).toBeLessThan(5000); // not the 10–15 s it took before

    const deleting = Date.now();
    const del = await runCli(["--host", agent.address!, "vm", "delete", "frozen", "--force"]);
    expect(del.code, del.stderr).toBe(0);
    expect(Date.now() - deleting).toBeLessThan(5000);
    expect(gone(vm.helperPid)).toBe(true);
    expect((await callError(vms, vms.getVm, { vmId: "frozen" })).code).toBe(grpc.status.NOT_FOUND);
  });

  it("is stopped by `stop --force`: STOPPED, the signals named, the helper gone", async () => {
    const vm = await createVm(vms, "frozen2");
    process.kill(vm.helperPid, "SIGSTOP");
    expect((await hungVm(vms, "frozen2")).health?.hung).toBe(true);
    const stopped = await call(vms, vms.stopVm, { vmId: "frozen2", force: true, timeoutMs: 0 });
    expect(stopped.state).toBe(VmState.VM_STATE_STOPPED);
    expect(stopped.stateReason).toMatch(/^stopped by client \(forced\); the helper was stopped \(SIGSTOP or a debugger\), so it was ended by SIGTERM/);
    expect(stopped.health).toBeUndefined();
    expect(gone(vm.helperPid)).toBe(true);
    await call(vms, vms.deleteVm, { vmId: "frozen2", force: false });
  });
});

describe.skipIf(!hasKvm)("a re-attached helper", () => {
  it("killed by SIGKILL is CRASHED with that cause, not as one that stopped answering", async () => {
    const first = await startAgent();
    const c1 = new VmServiceClient(first.address!, grpc.credentials.createInsecure());
    const vm = await createVm(c1, "adopted");
    c1.close();
    await first.stop("SIGKILL");
    const second = await startAgent([], { stateDir: first.stateDir, runtimeDir: first.runtimeDir });
    const c2 = new VmServiceClient(second.address!, grpc.credentials.createInsecure());
    try {
      expect((await call(c2, c2.getVm, { vmId: "adopted" })).state).toBe(VmState.VM_STATE_RUNNING);
      process.kill(vm.helperPid, "SIGKILL");
      const crashed = await waitForState(c2, "adopted", VmState.VM_STATE_CRASHED);
      expect(crashed.stateReason).toBe(`helper process ${vm.helperPid} was killed (SIGKILL or a crash): it left no exit record in its log`);
      expect(second.logs()).not.toMatch(/could not be reached again|stopped answering/);
    } finally {
      c2.close();
      await second.stop();
      killHelpersOf(first.runtimeDir);
      cleanup(first.stateDir, first.runtimeDir);
    }
  });
});

describe.skipIf(!hasKvm)("WatchVms from a sequence it cannot serve", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let host: HostServiceClient;

  beforeAll(async () => {
    agent = await startAgent();
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    host = new HostServiceClient(agent.address!, grpc.credentials.createInsecure());
    await createVm(vms, "watched", undefined, false);
  });
  afterAll(async () => {
    await call(vms, vms.deleteVm, { vmId: "watched", force: true }).catch(() => undefined);
    vms.close();
    host.close();
    await agent.stop();
    killHelpersOf(agent.runtimeDir);
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("beyond the last one: RESYNC with the agent's instance id, then the current state", async () => {
    const { agent: me } = await call(host, host.getHost, {});
    expect(me!.instanceId).toMatch(/^[0-9a-f-]{36}$/);
    const events = await watch(vms, { fromSequence: 1_000_000n }, (e) => e.length >= 2);
    expect(events[0]).toMatchObject({ type: VmEventType.VM_EVENT_TYPE_RESYNC, instanceId: me!.instanceId });
    expect(events[1]).toMatchObject({ type: VmEventType.VM_EVENT_TYPE_SNAPSHOT, vmId: "watched", instanceId: me!.instanceId });
  });

  it("a number from another agent instance: RESYNC, though the number is one this agent has", async () => {
    const { agent: me } = await call(host, host.getHost, {});
    const events = await watch(vms, { fromSequence: 1n, instanceId: "another-agent" }, (e) => e.length >= 2);
    expect(events.map((e) => e.type)).toEqual([VmEventType.VM_EVENT_TYPE_RESYNC, VmEventType.VM_EVENT_TYPE_SNAPSHOT]);
    expect(events[0].instanceId).toBe(me!.instanceId);
  });

  it("a number from this instance: the events after it, no RESYNC", async () => {
    const { agent: me } = await call(host, host.getHost, {});
    const before = await call(vms, vms.getVm, { vmId: "watched" });
    await call(vms, vms.startVm, { vmId: "watched" });
    const events = await watch(vms, { fromSequence: before.lastEventSequence, instanceId: me!.instanceId }, (e) => e.length >= 1);
    expect(events[0]).toMatchObject({ type: VmEventType.VM_EVENT_TYPE_STATE_CHANGED, sequence: before.lastEventSequence + 1n, state: VmState.VM_STATE_RUNNING, instanceId: me!.instanceId });
  });

});
