// The SDK's snapshot methods against a real agent on KVM: progress reaches the caller, the results are
// the agent's records, a repeated restore (same request id) returns the same VM, a repeated delete is
// success, and refusals arrive as typed errors.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AlreadyExistsError, CancelledError, connect, FailedPreconditionError, InvalidArgumentError, NotFoundError, VmState, type QumraClient, type SnapshotProgress } from "qumra/client";
import { discardAgent, startAgent, type RunningAgent } from "./helpers/agent.js";
import { hasKvm } from "./helpers/kvm.js";
import { demoSpec } from "./helpers/vm.js";

describe.skipIf(!hasKvm)("SDK snapshots on a real agent", () => {
  let agent: RunningAgent;
  let c: QumraClient;

  beforeAll(async () => {
    agent = await startAgent();
    c = connect({ address: agent.address });
  });
  afterAll(async () => {
    c?.close();
    if (agent) await discardAgent(agent);
  });

  test("snapshot with progress, list, restore (repeatable by request id), delete (repeatable)", async () => {
    await c.createVm({ vmId: "snap-src", spec: { ...demoSpec("snap-src"), memoryBytes: 8n << 20n } });
    await c.startVm("snap-src");
    const seen: SnapshotProgress[] = [];
    const snap = await c.snapshotVm("snap-src", "sdk-one", { onProgress: (p) => seen.push(p) });
    expect(snap.name).toBe("sdk-one");
    expect(snap.sourceVmId).toBe("snap-src");
    expect(snap.wasRunning).toBe(true);
    expect(snap.memoryBytes).toBe(8n << 20n);
    expect(seen.at(-1)!.done).toBe(true);
    expect(seen.length).toBeGreaterThan(1);
    expect((await c.getVm("snap-src")).state).toBe(VmState.VM_STATE_RUNNING);

    expect((await c.listSnapshots()).map((s) => s.name)).toEqual(["sdk-one"]);
    await expect(c.snapshotVm("snap-src", "sdk-one")).rejects.toBeInstanceOf(AlreadyExistsError);

    const first = await c.restoreVm({ snapshotName: "sdk-one", vmId: "snap-copy", requestId: "restore-once", start: false });
    expect(first.vmId).toBe("snap-copy");
    expect(first.state).toBe(VmState.VM_STATE_PAUSED);
    const again = await c.restoreVm({ snapshotName: "sdk-one", vmId: "snap-copy", requestId: "restore-once" });
    expect(again.vmId).toBe("snap-copy");
    expect(again.requestId).toBe("restore-once");
    await expect(c.restoreVm({ snapshotName: "sdk-one", vmId: "snap-copy", requestId: "someone-else" })).rejects.toBeInstanceOf(AlreadyExistsError);
    await expect(c.restoreVm({ snapshotName: "sdk-one", vmId: "snap-other", sourceVmId: "not-it" })).rejects.toBeInstanceOf(FailedPreconditionError);

    await c.deleteSnapshot("sdk-one");
    expect(await c.listSnapshots()).toEqual([]);
    // Only a repeat's NOT_FOUND is success; a first call's is the caller's to know.
    await expect(c.deleteSnapshot("sdk-one")).rejects.toBeInstanceOf(NotFoundError);
  }, 120_000);

  test("refusals and cancel are typed", async () => {
    await expect(c.restoreVm({ snapshotName: "no-such", vmId: "x1" })).rejects.toBeInstanceOf(NotFoundError);
    await expect(c.snapshotVm("no-such-vm", "n1")).rejects.toBeInstanceOf(NotFoundError);
    await expect(c.snapshotVm("snap-src", "../escape")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(c.deleteSnapshot(".hidden")).rejects.toBeInstanceOf(InvalidArgumentError);
    const aborted = new AbortController();
    aborted.abort();
    await expect(c.snapshotVm("snap-src", "never", { signal: aborted.signal })).rejects.toBeInstanceOf(CancelledError);
    // Cancelled mid-way: the caller gets CancelledError; the agent finishes or drops its snapshot, and the VM runs on.
    const midway = new AbortController();
    await expect(c.snapshotVm("snap-src", "midway", { signal: midway.signal, onProgress: () => midway.abort() })).rejects.toBeInstanceOf(CancelledError);
    // It may still be paused for the snapshot the agent is finishing.
    let state = (await c.getVm("snap-src")).state;
    for (let i = 0; i < 100 && state !== VmState.VM_STATE_RUNNING; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = (await c.getVm("snap-src")).state;
    }
    expect(state).toBe(VmState.VM_STATE_RUNNING);
    await expect(c.snapshotVm("snap-src", "n2", { deadlineMs: 0 })).rejects.toThrow(/deadlineMs 0 must be above 0/);
  }, 60_000);
});
