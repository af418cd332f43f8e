// kill -9 of the agent in the middle of a snapshot of a running VM: after a restart the VM runs again
// (its helper was left paused), the half-written snapshot is gone and never listed, and a new snapshot
// of the same name works. Then the same during a restore: the half-restored VM is rolled back.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, VmState, type SnapshotProgress } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { call, callError, collect } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { helpersIn } from "./helpers/proc.js";
import { attachConsole, createVm, demoSpec, waitForState } from "./helpers/vm.js";

const MIB = 1 << 20;

/** Resolves with the stream's first message that passes `pred` (the stream keeps running). */
function firstProgress(stream: grpc.ClientReadableStream<SnapshotProgress>, pred: (p: SnapshotProgress) => boolean): Promise<SnapshotProgress> {
  return new Promise((resolve, reject) => {
    stream.on("data", (p: SnapshotProgress) => {
      if (pred(p)) resolve(p);
    });
    stream.on("error", reject);
    stream.on("end", () => reject(new Error("the stream ended before the progress looked for")));
  });
}

describe.skipIf(!hasKvm)("kill -9 of the agent during a snapshot and a restore", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;

  const connect = () => (vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure()));
  const restart = async () => {
    vms.close();
    agent = await startAgent([], { stateDir: agent.stateDir, runtimeDir: agent.runtimeDir });
    connect();
  };
  const snapshotsDir = () => path.join(agent.stateDir, "snapshots");

  beforeAll(async () => {
    agent = await startAgent();
    connect();
  }, 30_000);
  afterAll(async () => {
    vms.close();
    await agent.stop();
    killHelpersOf(agent.runtimeDir);
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("mid-snapshot: the VM runs again after the restart, no half snapshot is left or listed", async () => {
    await createVm(vms, "busy", demoSpec("busy", { memoryBytes: 64n << 20n }));
    const con = attachConsole(vms, "busy");
    await con.waitFor("qumra demo guest\n", 60_000);
    // 24 MiB of data in guest RAM (above the guest's own), so copying memory takes long enough to be cut.
    for (let i = 0; i < 24; i++) await call(vms, vms.writeMemory, { vmId: "busy", address: BigInt((16 + i) * MIB), data: randomBytes(MIB) });
    con.send("t");
    await con.waitFor("tick 1\n", 30_000);
    con.close();

    const stream = vms.snapshotVm({ vmId: "busy", snapshotName: "cut" });
    stream.on("error", () => undefined);
    await firstProgress(stream, (p) => p.phase === "memory" && p.bytesDone > 0n);
    agent.process.kill("SIGKILL");
    await agent.stop();
    // Killed part-way: the temp folder is there, the snapshot is not.
    expect(existsSync(path.join(snapshotsDir(), "cut"))).toBe(false);
    expect(readdirSync(snapshotsDir()).some((n) => n.startsWith(".tmp-cut-"))).toBe(true);

    await restart();
    expect(readdirSync(snapshotsDir())).toEqual([]);
    expect((await call(vms, vms.listSnapshots, {})).snapshots).toEqual([]);
    const vm = await waitForState(vms, "busy", VmState.VM_STATE_RUNNING);
    expect(vm.stateReason).toMatch(/resumed: a snapshot \('cut'\) interrupted by an agent restart had paused it/);
    const after = attachConsole(vms, "busy");
    await after.waitFor(/tick \d+\n/, 30_000, after.text().length);
    after.close();

    // The name is free again, and a snapshot of it completes.
    const done = await collect<SnapshotProgress>(vms.snapshotVm({ vmId: "busy", snapshotName: "cut" }));
    expect(done.at(-1)!.snapshot!.memoryDataBytes).toBeGreaterThanOrEqual(BigInt(24 * MIB));
    expect((await call(vms, vms.getVm, { vmId: "busy" })).state).toBe(VmState.VM_STATE_RUNNING);
  });

  it("mid-restore: the half-restored VM is rolled back after the restart, its helper gone", async () => {
    const stream = vms.restoreVm({ vmId: "half", requestId: randomUUID(), sourceVmId: "", snapshotName: "cut", start: false });
    stream.on("error", () => undefined);
    // The new VM's helper runs and RAM is being written into it.
    await firstProgress(stream, (p) => p.phase === "memory" && p.bytesDone > 0n);
    const helperOfHalf = () => [...helpersIn(agent.runtimeDir).values()].filter((d) => path.basename(d) === "half").length;
    expect(helperOfHalf()).toBe(1);
    agent.process.kill("SIGKILL");
    await agent.stop();

    await restart();
    expect((await callError(vms, vms.getVm, { vmId: "half" })).code).toBe(grpc.status.NOT_FOUND);
    expect(helperOfHalf()).toBe(0);
    expect(existsSync(path.join(agent.stateDir, "vms", "half"))).toBe(false);
    // The snapshot itself is untouched, and restores.
    const vm = (await collect<SnapshotProgress>(vms.restoreVm({ vmId: "half", requestId: randomUUID(), sourceVmId: "busy", snapshotName: "cut", start: true }))).at(-1)!.vm!;
    expect(vm.state).toBe(VmState.VM_STATE_RUNNING);
  });
});
