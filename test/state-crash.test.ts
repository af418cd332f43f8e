// Issue 15, case 2: 60 concurrent creates, the agent kill -9'd in the middle, restarted, every create
// retried with its request id: exactly one helper per VM, none orphaned, none lost, and what the crash
// left behind (temp files, runtime dirs of VMs that do not exist) cleaned.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, VmState, type Vm } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { demoSpec } from "./helpers/vm.js";
import { helpersIn } from "./helpers/state.js";

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
});
