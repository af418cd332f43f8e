// Issue 15, case 3: the state dir on a full filesystem (a 2 MiB tmpfs) and a read-only one (a read-only
// bind mount over it).
// A write that fails fails the operation before the VM changes, with RESOURCE_EXHAUSTED (ENOSPC) or
// UNAVAILABLE (EROFS) naming the path and errno; the agent restarts on either in degraded mode, says so
// in GetHost, serves reads and refuses mutations with FAILED_PRECONDITION.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import { VmServiceClient, VmState } from "../agent/src/gen/qumra/v1/vm.js";
import { HostServiceClient } from "../agent/src/gen/qumra/v1/host.js";
import { startAgent, cleanup, killHelpersOf, tempDir, type RunningAgent } from "./helpers/agent.js";
import { call, callError } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { createVm, demoSpec } from "./helpers/vm.js";
import { helpersIn } from "./helpers/proc.js";

const isRoot = process.getuid?.() === 0;

describe.skipIf(!hasKvm || !isRoot)("state dir on a full and on a read-only filesystem", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let host: HostServiceClient;
  const mnt = tempDir("disk");
  const stateDir = path.join(mnt, "state");
  const runtimeDir = tempDir("run");
  const fill = path.join(mnt, "fill");

  const connect = async () => {
    agent = await startAgent([], { stateDir, runtimeDir });
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    host = new HostServiceClient(agent.address!, grpc.credentials.createInsecure());
  };
  const restart = async () => {
    vms.close();
    host.close();
    await agent.stop();
    await connect();
  };
  /** Fills the tmpfs so that only `leave` bytes stay free. */
  const fillUp = (leave: number) => {
    rmSync(fill, { force: true });
    const { bavail, bsize } = statfsSync(mnt);
    const want = Math.max(0, Number(bavail) * Number(bsize) - leave);
    try {
      writeFileSync(fill, Buffer.alloc(want));
    } catch {
      /* full: what was written stays */
    }
  };
  const noTraceOf = (vmId: string) => {
    expect(existsSync(path.join(stateDir, "vms", vmId))).toBe(false);
    expect(existsSync(path.join(runtimeDir, vmId))).toBe(false);
    expect([...helpersIn(runtimeDir).values()].some((d) => d.endsWith(`/${vmId}`))).toBe(false);
  };
  // A read-only bind mount of the state dir over itself: the agent keeps its open audit file (which
  // would make a plain remount,ro fail with EBUSY), every new lookup sees a read-only filesystem.
  let boundRo = false;
  const readOnly = () => {
    execFileSync("mount", ["--bind", stateDir, stateDir]);
    boundRo = true;
    execFileSync("mount", ["-o", "remount,bind,ro", stateDir]);
  };
  const tempFiles = () => [stateDir, ...readdirSync(path.join(stateDir, "vms")).map((n) => path.join(stateDir, "vms", n))].flatMap((d) => readdirSync(d).filter((f) => f.includes(".tmp-")));

  beforeAll(async () => {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt]);
    mkdirSync(stateDir);
    await connect();
    await createVm(vms, "disk-run"); // RUNNING
    await createVm(vms, "disk-new", demoSpec("disk-new"), false); // CREATED
  }, 60_000);
  afterAll(async () => {
    vms?.close();
    host?.close();
    await agent?.stop();
    killHelpersOf(runtimeDir);
    if (boundRo) execFileSync("umount", [stateDir]);
    execFileSync("umount", [mnt]);
    cleanup(mnt, runtimeDir);
  });

  it("ENOSPC while storing an image: RESOURCE_EXHAUSTED naming the file, no VM, no helper, no temp file", async () => {
    fillUp(96 * 1024);
    const image = randomBytes(512 * 1024);
    const err = await callError(vms, vms.createVm, {
      vmId: "disk-img",
      requestId: randomUUID(),
      spec: { ...demoSpec("disk-img"), boot: { $case: "flatImage", value: { image, loadAddress: 0x200000n, entryAddress: 0n, mode: 1 } } },
    });
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain(path.join(stateDir, "vms", "disk-img", "image.bin"));
    expect(err.details).toContain("ENOSPC");
    noTraceOf("disk-img");
    expect(tempFiles()).toEqual([]);
    const { vms: list } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
    expect(list.map((v) => v.vmId)).toEqual(["disk-new", "disk-run"]);
  }, 30_000);

  it("ENOSPC on the record itself: RESOURCE_EXHAUSTED before any helper starts", async () => {
    fillUp(0);
    const err = await callError(vms, vms.createVm, { vmId: "disk-full", requestId: randomUUID(), spec: demoSpec("disk-full") });
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/ENOSPC/);
    noTraceOf("disk-full");
  }, 30_000);

  it("restarts on the full disk in degraded mode: reads work, mutations FAILED_PRECONDITION; freeing the disk ends it", async () => {
    await restart();
    const h = await call(host, host.getHost, {});
    expect(h.agent!.degraded).toContain("ENOSPC");
    expect((await call(vms, vms.getVm, { vmId: "disk-run" })).state).toBe(VmState.VM_STATE_RUNNING);
    const err = await callError(vms, vms.createVm, { vmId: "disk-deg", requestId: randomUUID(), spec: demoSpec("disk-deg") });
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toContain("degraded mode");
    expect(err.details).toContain("ENOSPC");
    noTraceOf("disk-deg");
    rmSync(fill);
    const vm = await call(vms, vms.createVm, { vmId: "disk-deg", requestId: randomUUID(), spec: demoSpec("disk-deg") });
    expect(vm.state).toBe(VmState.VM_STATE_CREATED);
    expect((await call(host, host.getHost, {})).agent!.degraded).toBe("");
    await call(vms, vms.deleteVm, { vmId: "disk-deg", force: true });
    noTraceOf("disk-deg");
  }, 60_000);

  it("EROFS on start, stop and delete: UNAVAILABLE and the VM unchanged, in memory and in fact", async () => {
    const runPid = (await call(vms, vms.getVm, { vmId: "disk-run" })).helperPid;
    readOnly();
    const start = await callError(vms, vms.startVm, { vmId: "disk-new" });
    expect(start.code).toBe(grpc.status.UNAVAILABLE);
    expect(start.details).toContain("EROFS");
    expect(start.details).toContain(path.join(stateDir, "vms", "disk-new", "vm.json"));
    expect((await call(vms, vms.getVm, { vmId: "disk-new" })).state).toBe(VmState.VM_STATE_CREATED);

    expect((await callError(vms, vms.stopVm, { vmId: "disk-run", force: true, timeoutMs: 0 })).code).toBe(grpc.status.UNAVAILABLE);
    expect((await callError(vms, vms.deleteVm, { vmId: "disk-run", force: true })).code).toBe(grpc.status.UNAVAILABLE);
    const run = await call(vms, vms.getVm, { vmId: "disk-run" });
    expect(run.state).toBe(VmState.VM_STATE_RUNNING);
    expect(run.helperPid).toBe(runPid);
    expect(helpersIn(runtimeDir).has(runPid)).toBe(true);
    // Still controlled: the helper answers.
    expect((await call(vms, vms.getVmStats, { vmId: "disk-run" })).vmId).toBe("disk-run");
  }, 30_000);

  it("restarts on the read-only dir in degraded mode and reports it", async () => {
    await restart();
    const h = await call(host, host.getHost, {});
    expect(h.agent!.degraded).toContain("EROFS");
    const { vms: list } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
    expect(list.map((v) => [v.vmId, v.state])).toEqual([["disk-new", VmState.VM_STATE_CREATED], ["disk-run", VmState.VM_STATE_RUNNING]]);
    const err = await callError(vms, vms.stopVm, { vmId: "disk-run", force: true, timeoutMs: 0 });
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toContain("EROFS");
    expect((await call(vms, vms.getVm, { vmId: "disk-run" })).state).toBe(VmState.VM_STATE_RUNNING);
  }, 60_000);
});
