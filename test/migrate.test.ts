// Live migration between two real agents on this host (separate state and runtime dirs, real helpers
// on real /dev/kvm, real gRPC over their unix sockets and loopback TCP). The demo guest keeps writing
// memory ('2': 64 pages per 10 ms tick) and ticks on the console ('t') while it moves.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { crc32 } from "node:zlib";
import { VmServiceClient, VmState, VmEventType, MigrationPhase, type MigrationProgress, type MigrateVmRequest, type ConsoleOutput } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceClient, ScreenshotFormat } from "../agent/src/gen/qumra/v1/display.js";
import { startAgent, cleanup, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { call, callError, collect } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { attachConsole, createVm, demoSpec, waitForState, watch, lastTick } from "./helpers/vm.js";
import { helpersIn } from "./helpers/proc.js";

const SPEC = () => demoSpec("mig", { display: { width: 640, height: 480 } });
const MiB = 1 << 20;

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!hasKvm)("live migration between two agents on real KVM", () => {
  let a: RunningAgent;
  let b: RunningAgent;
  let srcVms: VmServiceClient;
  let dstVms: VmServiceClient;
  let dstDisplay: DisplayServiceClient;
  let srcDisplay: DisplayServiceClient;

  const connect = () => {
    srcVms = new VmServiceClient(`unix:${a.socket}`, grpc.credentials.createInsecure());
    dstVms = new VmServiceClient(`unix:${b.socket}`, grpc.credentials.createInsecure());
    srcDisplay = new DisplayServiceClient(`unix:${a.socket}`, grpc.credentials.createInsecure());
    dstDisplay = new DisplayServiceClient(`unix:${b.socket}`, grpc.credentials.createInsecure());
  };
  const close = () => [srcVms, dstVms, srcDisplay, dstDisplay].forEach((c) => c.close());
  const request = (vmId: string, extra: Partial<MigrateVmRequest> = {}): MigrateVmRequest => ({
    vmId, destination: `unix:${b.socket}`, tls: undefined, maxDowntimeMs: 0, maxBandwidthBytesPerSecond: 0n, maxRounds: 0, ...extra,
  });
  const migrate = (req: MigrateVmRequest) => collect<MigrationProgress>(srcVms.migrateVm(req, { deadline: Date.now() + 120_000 }));
  const migrateError = async (req: MigrateVmRequest): Promise<grpc.ServiceError> => {
    try {
      await migrate(req);
    } catch (err) {
      return err as grpc.ServiceError;
    }
    throw new Error(`migration of ${req.vmId} succeeded but was expected to fail`);
  };
  const busyGuest = async (client: VmServiceClient, vmId: string) => {
    await createVm(client, vmId, SPEC());
    const con = attachConsole(client, vmId);
    await con.waitFor("qumra demo guest\n", 60_000);
    con.send("t2");
    await con.waitFor("dirty 64\n", 30_000);
    await con.waitFor("tick 1\n", 30_000);
    return con;
  };
  const ramCrc = async (client: VmServiceClient, vmId: string, bytes: number) => {
    let crc = 0;
    for (let at = 0; at < bytes; at += MiB) crc = crc32(Buffer.from((await call(client, client.readMemory, { vmId, address: BigInt(at), length: MiB })).data), crc);
    return crc >>> 0;
  };
  const vmIds = async (client: VmServiceClient) => (await call(client, client.listVms, { state: 0, labelSelector: {} })).vms.map((v) => v.vmId);

  beforeAll(async () => {
    a = await startAgent();
    b = await startAgent();
    connect();
  });
  afterAll(async () => {
    close();
    for (const agent of [a, b]) {
      await agent.stop();
      killHelpersOf(agent.runtimeDir);
      cleanup(agent.stateDir, agent.runtimeDir);
    }
  });

  it("moves a running VM that keeps writing memory: same RAM at the switch, the console and keyboard go on there, the source ends MIGRATED", async () => {
    const con = await busyGuest(srcVms, "busy");
    // A console held on the source ends with a status naming the destination.
    const held = srcVms.attachConsole();
    held.write({ vmId: "busy", data: Buffer.alloc(0) });
    const heldEnd = new Promise<grpc.ServiceError | undefined>((resolve) => {
      held.on("data", (_: ConsoleOutput) => undefined);
      held.on("error", (err: grpc.ServiceError) => resolve(err));
      held.on("end", () => resolve(undefined));
    });
    const events = watch(srcVms, { vmId: "busy" }, (evs) => evs.some((e) => e.type === VmEventType.VM_EVENT_TYPE_DELETED), 120_000);

    const progress = await migrate(request("busy"));
    const last = progress.at(-1)!;
    expect(last.phase).toBe(MigrationPhase.MIGRATION_PHASE_COMPLETED);
    expect(progress.some((p) => p.phase === MigrationPhase.MIGRATION_PHASE_PRECOPY)).toBe(true);
    expect(progress.some((p) => p.phase === MigrationPhase.MIGRATION_PHASE_STOP_AND_COPY)).toBe(true);
    // The guest wrote memory during the copy: some pages went more than once.
    expect(last.round).toBeGreaterThanOrEqual(1);
    expect(Number(last.bytesSent)).toBeGreaterThan(8 * MiB);
    expect(last.downtimeMs).toBeGreaterThan(0);
    expect(last.totalMs).toBeGreaterThanOrEqual(last.downtimeMs);
    expect(last.ramCrc32).not.toBe(0);
    expect(last.destination).toBe(`unix:${b.socket}`);

    // The source: MIGRATED, then DELETED; the VM is gone here and its console ended naming the destination.
    const evs = await events;
    const migrated = evs.find((e) => e.type === VmEventType.VM_EVENT_TYPE_MIGRATED)!;
    expect(migrated.state).toBe(VmState.VM_STATE_MIGRATED);
    expect(migrated.reason).toContain(`migrated to unix:${b.socket}`);
    expect((await callError(srcVms, srcVms.getVm, { vmId: "busy" })).code).toBe(grpc.status.NOT_FOUND);
    const end = await heldEnd;
    expect(end?.code).toBe(grpc.status.UNAVAILABLE);
    expect(end?.details).toContain(`migrated to unix:${b.socket}`);
    expect(end?.metadata.get("qumra-migrated-to")).toEqual([`unix:${b.socket}`]);
    con.close();
    expect(helpersIn(a.runtimeDir).size).toBe(0);

    // The destination runs it, same id, with the scrollback, and the guest goes on counting from where it was.
    const there = await call(dstVms, dstVms.getVm, { vmId: "busy" });
    expect(there.state).toBe(VmState.VM_STATE_RUNNING);
    expect(there.stateReason).toMatch(/migrated from/);
    const copy = attachConsole(dstVms, "busy");
    await copy.waitFor("qumra demo guest\n", 5_000);
    const mark = copy.text().length;
    const n = lastTick(copy.text());
    expect(n).toBeGreaterThanOrEqual(1);
    await copy.waitFor(`tick ${n + 1}\n`, 30_000, mark);
    expect(copy.text().slice(mark)).not.toContain("qumra demo guest");
    const keyMark = copy.text().length;
    await call(dstDisplay, dstDisplay.sendInput, { vmId: "busy", events: [{ event: { $case: "key", value: { scancode: 0x1e, pressed: true } } }, { event: { $case: "key", value: { scancode: 0x1e, pressed: false } } }] });
    await copy.waitFor("kbd 0x1e\n", 30_000, keyMark);
    copy.close();
    await call(dstVms, dstVms.deleteVm, { vmId: "busy", force: true });
  });

  it("moves a paused VM over TCP: its RAM (read back through the API) and its screen are the same there, and it stays paused", async () => {
    const con = await busyGuest(srcVms, "still");
    await call(srcVms, srcVms.pauseVm, { vmId: "still" });
    con.close();
    const crcBefore = await ramCrc(srcVms, "still", 32 * MiB);
    const shotBefore = Buffer.from((await call(srcDisplay, srcDisplay.screenshot, { vmId: "still", format: ScreenshotFormat.SCREENSHOT_FORMAT_RAW })).data);

    const last = (await migrate(request("still", { destination: b.address! }))).at(-1)!;
    expect(last.phase).toBe(MigrationPhase.MIGRATION_PHASE_COMPLETED);
    expect(last.ramCrc32).toBe(crcBefore);

    expect((await call(dstVms, dstVms.getVm, { vmId: "still" })).state).toBe(VmState.VM_STATE_PAUSED);
    expect(await ramCrc(dstVms, "still", 32 * MiB)).toBe(crcBefore);
    const shotAfter = Buffer.from((await call(dstDisplay, dstDisplay.screenshot, { vmId: "still", format: ScreenshotFormat.SCREENSHOT_FORMAT_RAW })).data);
    expect(shotAfter.length).toBe(640 * 480 * 4);
    expect(shotAfter.equals(shotBefore)).toBe(true);
    // It runs there when resumed.
    const copy = attachConsole(dstVms, "still");
    await copy.waitFor("qumra demo guest\n", 5_000);
    const mark = copy.text().length;
    const n = lastTick(copy.text());
    await call(dstVms, dstVms.resumeVm, { vmId: "still" });
    await copy.waitFor(`tick ${n + 1}\n`, 30_000, mark);
    copy.close();
    await call(dstVms, dstVms.deleteVm, { vmId: "still", force: true });
  });

  it("a destination helper killed mid-copy, a cancel, or a caller that goes away leaves the VM running at the source and nothing at the destination", async () => {
    const con = await busyGuest(srcVms, "stay");
    const slow = request("stay", { maxBandwidthBytesPerSecond: BigInt(MiB) });

    // Kill -9 the incoming VM's helper while pages are copied.
    const killed = migrateError(slow);
    const pid = await until("the incoming helper", () => [...helpersIn(b.runtimeDir).keys()][0]);
    await new Promise((r) => setTimeout(r, 500));
    process.kill(pid, "SIGKILL");
    const err = await killed;
    expect([grpc.status.UNAVAILABLE, grpc.status.INTERNAL, grpc.status.FAILED_PRECONDITION]).toContain(err.code);
    expect((await call(srcVms, srcVms.getVm, { vmId: "stay" })).state).toBe(VmState.VM_STATE_RUNNING);
    await until("the destination cleaned up", async () => ((await vmIds(dstVms)).length === 0 ? true : undefined));

    // CancelMigration from another client.
    const cancelled = migrateError(slow);
    await until("the incoming VM", async () => ((await vmIds(dstVms)).includes("stay") ? true : undefined));
    await call(srcVms, srcVms.cancelMigration, { vmId: "stay" });
    const c = await cancelled;
    expect(c.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(c.details).toMatch(/cancelled/);
    expect((await call(srcVms, srcVms.getVm, { vmId: "stay" })).state).toBe(VmState.VM_STATE_RUNNING);
    await until("the destination cleaned up", async () => ((await vmIds(dstVms)).length === 0 ? true : undefined));

    // The caller cancels its own call.
    const stream = srcVms.migrateVm(slow);
    stream.on("error", () => undefined);
    await until("the incoming VM", async () => ((await vmIds(dstVms)).includes("stay") ? true : undefined));
    stream.cancel();
    await until("the destination cleaned up", async () => ((await vmIds(dstVms)).length === 0 ? true : undefined));
    await until("the source free again", async () => {
      const vm = await call(srcVms, srcVms.getVm, { vmId: "stay" });
      return vm.state === VmState.VM_STATE_RUNNING ? vm : undefined;
    });

    // Still the same guest, still counting.
    const mark = con.text().length;
    await con.waitFor(`tick ${lastTick(con.text()) + 1}\n`, 30_000, mark);
    con.close();
    await call(srcVms, srcVms.deleteVm, { vmId: "stay", force: true });
  });

  it("an agent killed on either side during the copy never leaves two running copies", async () => {
    // The destination agent dies: the source keeps the VM; the restarted destination rolls its copy back.
    await busyGuest(srcVms, "twice");
    const slow = request("twice", { maxBandwidthBytesPerSecond: BigInt(MiB) });
    const dying = migrateError(slow);
    await until("the incoming VM", async () => ((await vmIds(dstVms)).includes("twice") ? true : undefined));
    await b.stop("SIGKILL");
    expect((await dying).code).toBe(grpc.status.UNAVAILABLE);
    expect((await call(srcVms, srcVms.getVm, { vmId: "twice" })).state).toBe(VmState.VM_STATE_RUNNING);
    close();
    b = await startAgent([], { stateDir: b.stateDir, runtimeDir: b.runtimeDir });
    connect();
    expect(await vmIds(dstVms)).toEqual([]);
    expect(helpersIn(b.runtimeDir).size).toBe(0);

    // The source agent dies: the destination drops its copy; the restarted source runs the VM again.
    const gone = migrate(slow).catch((err: grpc.ServiceError) => err);
    await until("the incoming VM", async () => ((await vmIds(dstVms)).includes("twice") ? true : undefined));
    await a.stop("SIGKILL");
    await gone;
    await until("the destination cleaned up", async () => ((await vmIds(dstVms)).length === 0 ? true : undefined));
    close();
    a = await startAgent([], { stateDir: a.stateDir, runtimeDir: a.runtimeDir });
    connect();
    const vm = await waitForState(srcVms, "twice", VmState.VM_STATE_RUNNING);
    expect(vm.state).toBe(VmState.VM_STATE_RUNNING);
    await call(srcVms, srcVms.deleteVm, { vmId: "twice", force: true });
  });

  it("refuses with a clear error and changes nothing: bad destinations and options, unknown or stopped VMs, an id taken at the destination", async () => {
    await createVm(srcVms, "idle", SPEC(), false);
    const bad = async (req: MigrateVmRequest, code: grpc.status, message: RegExp) => {
      const err = await migrateError(req);
      expect(err.code, err.details).toBe(code);
      expect(err.details).toMatch(message);
    };
    await bad(request("idle", { destination: "" }), grpc.status.INVALID_ARGUMENT, /destination is missing/);
    await bad(request("idle", { destination: "nowhere" }), grpc.status.INVALID_ARGUMENT, /HOST:PORT/);
    await bad(request("idle", { destination: "10.1.2.3:50051" }), grpc.status.INVALID_ARGUMENT, /needs TLS/);
    await bad(request("idle", { maxDowntimeMs: 70_000 }), grpc.status.INVALID_ARGUMENT, /max_downtime_ms/);
    await bad(request("nope"), grpc.status.NOT_FOUND, /no VM 'nope'/);
    await bad(request("idle"), grpc.status.FAILED_PRECONDITION, /CREATED/);
    await call(srcVms, srcVms.startVm, { vmId: "idle" });
    // The destination already has a VM of that id: its refusal is passed on, and the source keeps running.
    await createVm(dstVms, "idle", SPEC(), false);
    await bad(request("idle"), grpc.status.ALREADY_EXISTS, /already exists/);
    expect((await call(srcVms, srcVms.getVm, { vmId: "idle" })).state).toBe(VmState.VM_STATE_RUNNING);
    // Nothing listens there.
    await bad(request("idle", { destination: `unix:${b.runtimeDir}/none.sock` }), grpc.status.UNAVAILABLE, /destination/);
    expect((await call(srcVms, srcVms.getVm, { vmId: "idle" })).state).toBe(VmState.VM_STATE_RUNNING);
    await call(srcVms, srcVms.deleteVm, { vmId: "idle", force: true });
    await call(dstVms, dstVms.deleteVm, { vmId: "idle", force: true });
  });
});
