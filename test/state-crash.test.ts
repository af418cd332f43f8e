// Issue 15, case 2: 60 concurrent creates, the agent kill -9'd in the middle, restarted, every create
// retried with its request id: exactly one helper per VM, none orphaned, none lost, and what the crash
// left behind (temp files, runtime dirs of VMs that do not exist) cleaned.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, VmState, type Vm } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { demoSpec } from "./helpers/vm.js";
import { helpersIn } from "./helpers/proc.js";

const N = 60;
const ids = Array.from({ length: N }, (_, i) => `crash-${String(i).padStart(2, "0")}`);
const requests = new Map(ids.map((id) => [id, randomUUID()]));

describe.skipIf(!hasKvm)("kill -9 of the agent during 60 concurrent creates", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;

  beforeAll(async () => {
    agent = await startAgent();
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
  }, 30_000);
  afterAll(async () => {
    vms.close();
    await agent.stop();
    killHelpersOf(agent.runtimeDir);
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("after a restart the retried creates give exactly one helper per VM, none orphaned, none lost", async () => {
    const first = ids.map((id) => call(vms, vms.createVm, { vmId: id, requestId: requests.get(id)!, spec: demoSpec(id) }, 120_000).then(() => "ok", () => "failed"));
    // Kill it once some helpers run and some creates are still under way.
    for (;;) {
      if (helpersIn(agent.runtimeDir).size >= N / 4) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    agent.process.kill("SIGKILL");
    await agent.stop();
    const outcomes = await Promise.all(first);
    vms.close();
    expect(outcomes.filter((o) => o === "failed").length).toBeGreaterThan(0); // the kill did cut some short

    // What a crash leaves besides: a temp file, and the runtime dir of a VM that does not exist.
    const someFolder = readdirSync(path.join(agent.stateDir, "vms"))[0]!;
    writeFileSync(path.join(agent.stateDir, "vms", someFolder, "vm.json.tmp-999999"), "{");
    mkdirSync(path.join(agent.runtimeDir, "ghost"));
    writeFileSync(path.join(agent.runtimeDir, "ghost", "qumra-vmm.log"), "old\n");

    agent = await startAgent([], { stateDir: agent.stateDir, runtimeDir: agent.runtimeDir });
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    const retried: Vm[] = await Promise.all(ids.map((id) => call(vms, vms.createVm, { vmId: id, requestId: requests.get(id)!, spec: demoSpec(id) }, 120_000)));
    expect(retried.map((v) => v.vmId)).toEqual(ids);

    const { vms: list } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
    expect(list.map((v) => v.vmId)).toEqual(ids);
    for (const vm of list) expect(vm.state, vm.vmId).toBe(VmState.VM_STATE_CREATED);
    const helpers = helpersIn(agent.runtimeDir);
    // Exactly one helper per VM: as many helpers as VMs, each in its own VM's runtime dir, the one its record names.
    expect(helpers.size).toBe(N);
    const byDir = new Map([...helpers].map(([pid, dir]) => [path.basename(dir), pid]));
    expect([...byDir.keys()].sort()).toEqual(ids);
    for (const vm of list) expect(byDir.get(vm.vmId), vm.vmId).toBe(vm.helperPid);

    // Every VM is controlled: a start and a forced stop go through its helper.
    await call(vms, vms.startVm, { vmId: ids[0]! });
    await call(vms, vms.stopVm, { vmId: ids[0]!, force: true, timeoutMs: 0 });

    expect(existsSync(path.join(agent.stateDir, "vms", someFolder, "vm.json.tmp-999999"))).toBe(false);
    expect(existsSync(path.join(agent.runtimeDir, "ghost"))).toBe(false);
    const runtimeDirs = readdirSync(agent.runtimeDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    expect(runtimeDirs.sort()).toEqual(ids);

    // Deleting removes the runtime dir too.
    await call(vms, vms.deleteVm, { vmId: ids[0]!, force: true });
    expect(existsSync(path.join(agent.runtimeDir, ids[0]!))).toBe(false);
  }, 240_000);

  it("kill -9 during concurrent starts and deletes: after a restart each VM is what its helper is, and deleted ones leave nothing", async () => {
    const left = ids.slice(1);
    // Few starts: running guests cost CPU on a small test machine; the rest stay CREATED.
    const starting = left.slice(0, 10);
    const deleting = left.slice(10, 40);
    const ops = [
      ...starting.map((id) => call(vms, vms.startVm, { vmId: id }, 60_000).then(() => "ok", () => "failed")),
      ...deleting.map((id) => call(vms, vms.deleteVm, { vmId: id, force: true }, 60_000).then(() => "ok", () => "failed")),
    ];
    for (;;) {
      if (helpersIn(agent.runtimeDir).size <= left.length - 3) break; // some deletes are done
      await new Promise((r) => setTimeout(r, 5));
    }
    agent.process.kill("SIGKILL");
    await agent.stop();
    await Promise.all(ops);
    vms.close();

    agent = await startAgent([], { stateDir: agent.stateDir, runtimeDir: agent.runtimeDir });
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    const { vms: list } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
    const helpers = new Map([...helpersIn(agent.runtimeDir)].map(([pid, dir]) => [path.basename(dir), pid]));
    for (const vm of list) {
      // Every VM the agent lists has its one helper; none is left mid-operation.
      expect(helpers.get(vm.vmId), vm.vmId).toBe(vm.helperPid);
      expect([VmState.VM_STATE_CREATED, VmState.VM_STATE_RUNNING], vm.vmId).toContain(vm.state);
      const record = JSON.parse(readFileSync(path.join(agent.stateDir, "vms", vm.vmId, "vm.json"), "utf8")) as { intent?: unknown };
      expect(record.intent, vm.vmId).toBeUndefined();
    }
    // No helper without a VM, no runtime dir or state folder of a VM that is gone.
    expect([...helpers.keys()].sort()).toEqual(list.map((v) => v.vmId));
    const runtimeDirs = readdirSync(agent.runtimeDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    expect(runtimeDirs.sort()).toEqual(list.map((v) => v.vmId));
    expect(readdirSync(path.join(agent.stateDir, "vms")).sort()).toEqual(list.map((v) => v.vmId));
    // Every VM still listed is controllable: the interrupted operations can be finished.
    await Promise.all(
      list.map(async (vm) => {
        if (starting.includes(vm.vmId) && vm.state === VmState.VM_STATE_CREATED) await call(vms, vms.startVm, { vmId: vm.vmId });
        if (deleting.includes(vm.vmId)) await call(vms, vms.deleteVm, { vmId: vm.vmId, force: true });
      }),
    );
    for (const id of deleting) expect(existsSync(path.join(agent.runtimeDir, id)), id).toBe(false);
  }, 240_000);

  it("a create whose helper fails leaves no runtime dir, state folder or helper", async () => {
    // The demo guest loads at 1 MiB, so a 1 MiB VM cannot hold it: the helper refuses at setup.
    const err = await call(vms, vms.createVm, { vmId: "crash-small", requestId: randomUUID(), spec: demoSpec("crash-small", { memoryBytes: 1n << 20n }) }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err).toBeDefined();
    expect(existsSync(path.join(agent.runtimeDir, "crash-small"))).toBe(false);
    expect(existsSync(path.join(agent.stateDir, "vms", "crash-small"))).toBe(false);
    expect([...helpersIn(agent.runtimeDir).values()].some((d) => d.endsWith("/crash-small"))).toBe(false);
  }, 60_000);
});
