// Regression: a restored VM must run again. A restore starts the new helper's vCPU threads parked
// (LOAD_STATE into a created VM); a thread that parked before the helper's pause kicked it kept
// immediate_exit armed, so after ResumeVm every KVM_RUN returned at once and the guest never ticked
// again (native/vcpu.c park()). It was a race: this test snapshots and restores a ticking VM over
// and over, each copy from the last one, with 4 vCPUs (more threads parked per restore: more chances
// to lose it), and asks every copy for its next tick.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { VmServiceClient, VmState, type SnapshotProgress } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, type RunningAgent } from "./helpers/agent.js";
import { call, collect } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { attachConsole, createVm, demoSpec, lastTick } from "./helpers/vm.js";

const ROUNDS = 8;
const SPEC = () => demoSpec("loop", { vcpus: 4, display: { width: 320, height: 200 } });

describe.skipIf(!hasKvm)("snapshot/restore loop on real KVM", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;

  const snapshot = (vmId: string, snapshotName: string) => collect<SnapshotProgress>(vms.snapshotVm({ vmId, snapshotName }, { deadline: Date.now() + 60_000 }));
  const restore = (vmId: string, snapshotName: string, start: boolean) =>
    collect<SnapshotProgress>(vms.restoreVm({ vmId, requestId: randomUUID(), sourceVmId: "", snapshotName, start }, { deadline: Date.now() + 60_000 }));

  beforeAll(async () => {
    agent = await startAgent();
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    const { vms: left } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
    await Promise.all(left.map((vm) => call(vms, vms.deleteVm, { vmId: vm.vmId, force: true })));
    vms.close();
    await agent.stop();
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it(`every one of ${ROUNDS} copies, each restored from a snapshot of the last, ticks on after its resume`, async () => {
    await createVm(vms, "loop-0", SPEC());
    const first = attachConsole(vms, "loop-0");
    await first.waitFor("qumra demo guest\n", 60_000);
    first.send("t");
    await first.waitFor("tick 1\n", 60_000);
    first.close();

    for (let i = 0; i < ROUNDS; i++) {
      const from = `loop-${i}`;
      const to = `loop-${i + 1}`;
      const name = `round-${i}`;
      await snapshot(from, name); // a running VM: paused for it, then resumed
      await call(vms, vms.deleteVm, { vmId: from, force: true });
      // Odd rounds restore running (RestoreVm start), even ones paused and then ResumeVm.
      const start = i % 2 === 1;
      const vm = (await restore(to, name, start)).at(-1)!.vm!;
      expect(vm.state).toBe(start ? VmState.VM_STATE_RUNNING : VmState.VM_STATE_PAUSED);
      await call(vms, vms.deleteSnapshot, { snapshotName: name });
      const con = attachConsole(vms, to);
      await con.waitFor("tick ", 10_000); // the restored scrollback
      const n = lastTick(con.text());
      const mark = con.text().length;
      if (!start) await call(vms, vms.resumeVm, { vmId: to });
      // A tick a second (heartbeat 100); a copy whose vCPU never runs again shows none at all.
      await con.waitFor(`tick ${n + 1}\n`, 10_000, mark).catch((err: Error) => {
        throw new Error(`round ${i}: copy ${to} did not tick on after tick ${n}: ${err.message}`);
      });
      con.close();
    }
  }, 180_000);
});
