// SnapshotVm / RestoreVm / ListSnapshots / DeleteSnapshot end to end: a real agent, real helpers on real
// /dev/kvm, real gRPC. The demo guest's 100 Hz tick counter shows on the console as "tick N" once a
// heartbeat is on (the `t` key): a restored guest goes on from the snapshot's N, not from 1.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { createHash, randomUUID } from "node:crypto";
import { cpSync, existsSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { crc32 } from "node:zlib";
import { VmServiceClient, VmState, type SnapshotProgress } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceClient, ScreenshotFormat } from "../agent/src/gen/qumra/v1/display.js";
import { startAgent, cleanup, type RunningAgent } from "./helpers/agent.js";
import { call, callError, collect } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { attachConsole, createVm, demoSpec, type ConsoleReader, lastTick } from "./helpers/vm.js";
import { helpersIn } from "./helpers/proc.js";

const SPEC = () => demoSpec("snap", { display: { width: 640, height: 480 } });

describe.skipIf(!hasKvm)("snapshots on real KVM", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let display: DisplayServiceClient;

  const snapshot = (vmId: string, snapshotName: string) => collect<SnapshotProgress>(vms.snapshotVm({ vmId, snapshotName }, { deadline: Date.now() + 120_000 }));
  const restore = (vmId: string, snapshotName: string, start: boolean, sourceVmId = "") =>
    collect<SnapshotProgress>(vms.restoreVm({ vmId, requestId: randomUUID(), sourceVmId, snapshotName, start }, { deadline: Date.now() + 120_000 }));
  const restoreError = async (vmId: string, snapshotName: string, sourceVmId = ""): Promise<grpc.ServiceError> => {
    try {
      await restore(vmId, snapshotName, false, sourceVmId);
    } catch (err) {
      return err as grpc.ServiceError;
    }
    throw new Error(`restore of ${snapshotName} succeeded but was expected to fail`);
  };
  const screenshot = async (vmId: string) => Buffer.from((await call(display, display.screenshot, { vmId, format: ScreenshotFormat.SCREENSHOT_FORMAT_RAW })).data);
  const ticking = async (vmId: string, upTo: number): Promise<ConsoleReader> => {
    await createVm(vms, vmId, SPEC());
    const con = attachConsole(vms, vmId);
    await con.waitFor("qumra demo guest\n", 60_000);
    con.send("t");
    await con.waitFor(`tick ${upTo}\n`, 60_000);
    return con;
  };
  const snapDir = (name: string) => path.join(agent.stateDir, "snapshots", name);

  beforeAll(async () => {
    agent = await startAgent();
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    display = new DisplayServiceClient(agent.address!, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    const { vms: left } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
    await Promise.all(left.map((vm) => call(vms, vms.deleteVm, { vmId: vm.vmId, force: true })));
    vms.close();
    display.close();
    await agent.stop();
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("a running VM's snapshot resumes it; restored under a new id its counter, scrollback and keyboard carry on", async () => {
    const con = await ticking("run-src", 2);
    const progress = await snapshot("run-src", "running-one");
    const last = progress.at(-1)!;
    expect(last.done).toBe(true);
    expect(last.snapshot!.name).toBe("running-one");
    expect(last.snapshot!.wasRunning).toBe(true);
    expect(last.snapshot!.sourceVmId).toBe("run-src");
    expect(progress.some((p) => p.phase === "memory")).toBe(true);
    expect(Number(last.bytesDone)).toBe(Number(last.bytesTotal));
    // The source runs again and keeps ticking.
    expect((await call(vms, vms.getVm, { vmId: "run-src" })).state).toBe(VmState.VM_STATE_RUNNING);
    const srcTicks = lastTick(con.text());
    await con.waitFor(`tick ${srcTicks + 1}\n`, 30_000);
    con.close();

    // Memory is a sparse file: far fewer bytes on disk than the guest's 32 MiB.
    const mem = statSync(path.join(snapDir("running-one"), "memory.bin"));
    expect(mem.size).toBe(32 << 20);
    expect(mem.blocks * 512).toBeLessThan(4 << 20);
    expect(Number(last.snapshot!.memoryDataBytes)).toBeLessThan(4 << 20);

    const restored = await restore("run-copy", "running-one", false, "run-src");
    const vm = restored.at(-1)!.vm!;
    expect(vm.vmId).toBe("run-copy");
    expect(vm.state).toBe(VmState.VM_STATE_PAUSED);
    const copy = attachConsole(vms, "run-copy");
    // The scrollback came with it: the banner and the ticks up to the snapshot.
    await copy.waitFor("qumra demo guest\n", 5_000);
    const mark = copy.text().length;
    const n = lastTick(copy.text());
    expect(n).toBeGreaterThanOrEqual(2);
    expect((await call(vms, vms.resumeVm, { vmId: "run-copy" })).state).toBe(VmState.VM_STATE_RUNNING);
    await copy.waitFor(`tick ${n + 1}\n`, 30_000, mark);
    // Not rebooted: no banner, no count from 1 again.
    expect(copy.text().slice(mark)).not.toContain("qumra demo guest");
    expect(copy.text().slice(mark)).not.toMatch(/(^|\n)tick 1\n/);
    // A key typed after the restore reaches the guest (set-1 'a' make and break codes, through the i8042).
    const keyMark = copy.text().length;
    await call(display, display.sendInput, { vmId: "run-copy", events: [{ event: { $case: "key", value: { scancode: 0x1e, pressed: true } } }, { event: { $case: "key", value: { scancode: 0x1e, pressed: false } } }] });
    await copy.waitFor("kbd 0x1e\n", 30_000, keyMark);
    copy.close();
  });

  it("a paused VM's snapshot restored under the same id: the same screen, paused at the same point, then it goes on", async () => {
    const con = await ticking("same", 2);
    expect((await call(vms, vms.pauseVm, { vmId: "same" })).state).toBe(VmState.VM_STATE_PAUSED);
    const before = await screenshot("same");
    const scrollback = con.text();
    const n = lastTick(scrollback);
    const progress = await snapshot("same", "paused-one");
    expect(progress.at(-1)!.snapshot!.wasRunning).toBe(false);
    expect((await call(vms, vms.getVm, { vmId: "same" })).state).toBe(VmState.VM_STATE_PAUSED);
    con.close();

    // Under its own id: the source goes first.
    expect((await restoreError("same", "paused-one")).code).toBe(grpc.status.ALREADY_EXISTS);
    await call(vms, vms.deleteVm, { vmId: "same", force: true });
    const vm = (await restore("same", "paused-one", false, "same")).at(-1)!.vm!;
    expect(vm.state).toBe(VmState.VM_STATE_PAUSED);
    expect(vm.stateReason).toMatch(/restored from snapshot 'paused-one'/);
    // The first screenshot of the restored VM, before it runs, is the one taken at snapshot time.
    const after = await screenshot("same");
    expect(after.length).toBe(640 * 480 * 4);
    expect(after.equals(before)).toBe(true);
    const copy = attachConsole(vms, "same");
    await copy.waitFor(`tick ${n}\n`, 5_000);
    expect(copy.text()).toBe(scrollback);
    await call(vms, vms.resumeVm, { vmId: "same" });
    await copy.waitFor(`tick ${n + 1}\n`, 30_000, scrollback.length);
    copy.close();

    // Restoring running (start) works too.
    const started = (await restore("same-2", "paused-one", true)).at(-1)!.vm!;
    expect(started.state).toBe(VmState.VM_STATE_RUNNING);
  });

  it("lists and deletes snapshots; refuses bad names, unknown and duplicate ones, and a VM that is not running or paused", async () => {
    const { snapshots } = await call(vms, vms.listSnapshots, {});
    const names = snapshots.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(["running-one", "paused-one"]));
    const one = snapshots.find((s) => s.name === "paused-one")!;
    expect(one.stateFormat).toBe(1);
    expect(Number(one.memoryBytes)).toBe(32 << 20);
    expect(Number(one.diskBytes)).toBeGreaterThan(Number(one.stateBytes));

    await createVm(vms, "fresh", SPEC(), false);
    const bad = async (vmId: string, snapshotName: string) => {
      try {
        await snapshot(vmId, snapshotName);
      } catch (err) {
        return (err as grpc.ServiceError).code;
      }
      return grpc.status.OK;
    };
    expect(await bad("fresh", "x")).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await bad("same", "../escape")).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await bad("same", ".hidden")).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await bad("same", "")).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await bad("same", "paused-one")).toBe(grpc.status.ALREADY_EXISTS);
    expect(await bad("nope", "x")).toBe(grpc.status.NOT_FOUND);
    expect((await restoreError("new-one", "no-such")).code).toBe(grpc.status.NOT_FOUND);
    expect((await restoreError("new-one", "paused-one", "run-src")).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((await restoreError("Bad_Id", "paused-one")).code).toBe(grpc.status.INVALID_ARGUMENT);

    await call(vms, vms.deleteSnapshot, { snapshotName: "running-one" });
    expect(existsSync(snapDir("running-one"))).toBe(false);
    expect((await callError(vms, vms.deleteSnapshot, { snapshotName: "running-one" })).code).toBe(grpc.status.NOT_FOUND);
    expect((await callError(vms, vms.deleteSnapshot, { snapshotName: "../vms" })).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("refuses, with nothing created, snapshots that are corrupt, truncated, of another format version or needing CPU features the host lacks", async () => {
    const variants: [string, (dir: string) => void, RegExp][] = [
      ["flipped-state", (d) => flip(path.join(d, "state.bin"), 500), /state\.bin does not match its sha256/],
      ["flipped-memory", (d) => flip(path.join(d, "memory.bin"), 0x100010), /memory\.bin does not match its crc32/],
      ["short-memory", (d) => truncateSync(path.join(d, "memory.bin"), 16 << 20), /memory\.bin is 16777216 bytes/],
      ["short-state", (d) => truncateSync(path.join(d, "state.bin"), 1000), /state\.bin is 1000 bytes/],
      ["version-2", (d) => editManifest(d, (m) => (m.stateFormat = 2)), /format version 2/],
      ["manifest-version", (d) => editManifest(d, (m) => (m.manifestVersion = 9)), /manifest version 9/],
      ["state-version-2", (d) => rewriteState(d, (b) => b.writeUInt32LE(2, 8)), /format version 2/],
      // Past the agent's checks (sha256 and header fixed up): the helper's per-section CRC refuses it, and the VM made for it goes.
      ["section-crc", (d) => rewriteState(d, (b) => (b[200] ^= 0xff)), /refused by the VM's helper: .*checksum mismatch/],
      ["cpu-features", (d) => editManifest(d, (m) => (m.cpuFeatures = Array(8).fill(0xffffffff))), /CPU features this host lacks/],
      ["garbage-manifest", (d) => writeFileSync(path.join(d, "manifest.json"), "{not json"), /not JSON/],
    ];
    const helpersBefore = helpersIn(agent.runtimeDir).size;
    const vmsBefore = (await call(vms, vms.listVms, { state: 0, labelSelector: {} })).vms.length;
    for (const [name, damage, why] of variants) {
      cpSync(snapDir("paused-one"), snapDir(name), { recursive: true });
      editManifest(snapDir(name), (m) => (m.name = name));
      damage(snapDir(name));
      const err = await restoreError(`r-${name}`, name);
      expect(err.code, name).toBe(grpc.status.FAILED_PRECONDITION);
      expect(err.details, name).toMatch(why);
      expect((await callError(vms, vms.getVm, { vmId: `r-${name}` })).code, name).toBe(grpc.status.NOT_FOUND);
    }
    expect((await call(vms, vms.listVms, { state: 0, labelSelector: {} })).vms.length).toBe(vmsBefore);
    expect(helpersIn(agent.runtimeDir).size).toBe(helpersBefore);
    expect(readdirSync(path.join(agent.stateDir, "vms")).filter((n) => n.startsWith("r-"))).toEqual([]);
  });
});

function flip(file: string, at: number): void {
  const b = readFileSync(file);
  b[at] ^= 0x5a;
  writeFileSync(file, b);
}

type Manifest = Record<string, unknown> & { state: { sha256: string; bytes: number } };

function editManifest(dir: string, edit: (m: Manifest) => void): void {
  const file = path.join(dir, "manifest.json");
  const m = JSON.parse(readFileSync(file, "utf8")) as Manifest;
  edit(m);
  writeFileSync(file, JSON.stringify(m));
}

/** Changes state.bin and fixes its header CRC and the manifest's sha256, so only the helper-level check can refuse it. */
function rewriteState(dir: string, edit: (b: Buffer) => void): void {
  const file = path.join(dir, "state.bin");
  const b = readFileSync(file);
  edit(b);
  b.writeUInt32LE(crc32(b.subarray(0, 92)), 92);
  writeFileSync(file, b);
  editManifest(dir, (m) => {
    m.state.sha256 = sha256(b);
    m.state.bytes = b.length;
  });
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
