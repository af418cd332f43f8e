// VmService end to end: a real agent, real qumra-vmm helpers, real /dev/kvm, over real gRPC.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { VmServiceClient, VmState, VmEventType, CpuMode } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, type RunningAgent } from "./helpers/agent.js";
import { call, callError } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { attachConsole, createVm, demoSpec, waitForState, watch, TINY_GUEST } from "./helpers/vm.js";

const CELL = 0x8000n;

describe.skipIf(!hasKvm)("VM lifecycle on real KVM", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;

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

  it("create → start → console → pause → registers → write → resume → guest sees it → stop → delete", async () => {
    const created = await call(vms, vms.createVm, { vmId: "life", requestId: randomUUID(), spec: demoSpec("life") });
    expect(created.state).toBe(VmState.VM_STATE_CREATED);
    expect(created.helperPid).toBeGreaterThan(0);

    const running = await call(vms, vms.startVm, { vmId: "life" });
    expect(running.state).toBe(VmState.VM_STATE_RUNNING);
    const con = attachConsole(vms, "life");
    await con.waitFor("qumra demo guest\n");

    const paused = await call(vms, vms.pauseVm, { vmId: "life" });
    expect(paused.state).toBe(VmState.VM_STATE_PAUSED);
    const first = await call(vms, vms.getVcpuState, { vmId: "life", vcpu: 0 });
    const second = await call(vms, vms.getVcpuState, { vmId: "life", vcpu: 0 });
    expect(first.regs!.rip).toBeGreaterThanOrEqual(0x100000n);
    expect(second.regs!.rip).toBe(first.regs!.rip);
    expect(first.sregs!.efer & 0x400n).toBe(0x400n); // long mode active
    expect(first.sregs!.cs!.l).toBe(true);

    const written = await call(vms, vms.setVcpuState, { vmId: "life", vcpu: 0, regs: { ...first.regs!, r15: 0x1234abcdn } });
    expect(written.regs!.r15).toBe(0x1234abcdn);
    expect(written.regs!.rip).toBe(first.regs!.rip);
    const cell = Buffer.from("0123456789abcdef", "hex");
    await call(vms, vms.writeMemory, { vmId: "life", address: CELL, data: cell });
    const back = await call(vms, vms.readMemory, { vmId: "life", address: CELL, length: 8 });
    expect(Buffer.from(back.data)).toEqual(cell);

    const mark = con.text().length;
    expect((await call(vms, vms.resumeVm, { vmId: "life" })).state).toBe(VmState.VM_STATE_RUNNING);
    con.send("?"); // wakes the idle guest, which reports r15 on every wake-up
    await con.waitFor("r15=0x000000001234abcd", 30_000, mark);
    con.send("p");
    await con.waitFor(`cell=0x${cell.readBigUInt64LE().toString(16).padStart(16, "0")}`, 30_000, mark);

    const stopped = await call(vms, vms.stopVm, { vmId: "life", force: false, timeoutMs: 20_000 });
    expect(stopped.state).toBe(VmState.VM_STATE_STOPPED);
    expect(stopped.stateReason).toMatch(/stopped by client/);
    expect(stopped.helperPid).toBe(0);
    await con.ended;

    await call(vms, vms.deleteVm, { vmId: "life", force: false });
    expect((await callError(vms, vms.getVm, { vmId: "life" })).code).toBe(grpc.status.NOT_FOUND);
  });

  it("retrying CreateVm with the same request_id returns the same VM; another request_id is ALREADY_EXISTS", async () => {
    const requestId = randomUUID();
    const req = { vmId: "idem", requestId, spec: demoSpec("idem") };
    const [a, b] = await Promise.all([call(vms, vms.createVm, req), call(vms, vms.createVm, req)]);
    const c = await call(vms, vms.createVm, req);
    expect(b.helperPid).toBe(a.helperPid);
    expect(c.createdAt).toEqual(a.createdAt);
    const other = await callError(vms, vms.createVm, { ...req, requestId: randomUUID() });
    expect(other.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(other.details).toMatch(/VM 'idem' already exists/);
    await call(vms, vms.deleteVm, { vmId: "idem", force: false });
  });

  it("runs 8 VMs at once", async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `many-${i}`);
    await Promise.all(ids.map((id) => createVm(vms, id)));
    await Promise.all(ids.map(async (id) => {
      const con = attachConsole(vms, id);
      await con.waitFor("qumra demo guest\n", 60_000);
      con.close();
    }));
    const { vms: listed } = await call(vms, vms.listVms, { state: VmState.VM_STATE_RUNNING, labelSelector: {} });
    expect(listed.map((v) => v.vmId)).toEqual(expect.arrayContaining(ids));
    expect(new Set(listed.filter((v) => ids.includes(v.vmId)).map((v) => v.helperPid)).size).toBe(8);
    await Promise.all(ids.map((id) => call(vms, vms.deleteVm, { vmId: id, force: true })));
  });

  it("a helper killed with SIGKILL makes its VM CRASHED with an event, and nothing else", async () => {
    const bystander = await createVm(vms, "bystander");
    const victim = await createVm(vms, "victim");
    const events = watch(vms, { vmId: "victim" }, (es) => es.some((e) => e.type === VmEventType.VM_EVENT_TYPE_STATE_CHANGED && e.state === VmState.VM_STATE_CRASHED));
    await new Promise((r) => setTimeout(r, 200));
    process.kill(victim.helperPid, "SIGKILL");
    const crashed = (await events).at(-1)!;
    expect(crashed.previousState).toBe(VmState.VM_STATE_RUNNING);
    expect(crashed.reason).toMatch(/killed by signal SIGKILL/);
    const vm = await call(vms, vms.getVm, { vmId: "victim" });
    expect(vm.state).toBe(VmState.VM_STATE_CRASHED);
    expect(vm.helperPid).toBe(0);
    expect((await call(vms, vms.getVm, { vmId: "bystander" })).state).toBe(VmState.VM_STATE_RUNNING);
    const con = attachConsole(vms, bystander.vmId);
    con.send("?");
    await con.waitFor("pong 0");
    con.close();
    await call(vms, vms.deleteVm, { vmId: "victim", force: false });
    await call(vms, vms.deleteVm, { vmId: "bystander", force: true });
  });

  it("a guest triple fault makes the VM CRASHED with the reason", async () => {
    await createVm(vms, "faulty");
    const con = attachConsole(vms, "faulty");
    await con.waitFor("qumra demo guest\n");
    con.send("x");
    const vm = await waitForState(vms, "faulty", VmState.VM_STATE_CRASHED, 30_000);
    expect(vm.stateReason).toMatch(/triple fault/);
    await con.ended;
    await call(vms, vms.deleteVm, { vmId: "faulty", force: false });
  });

  it("a guest that powers itself off is STOPPED", async () => {
    await createVm(vms, "poweroff");
    const con = attachConsole(vms, "poweroff");
    await con.waitFor("qumra demo guest\n");
    con.send("o");
    const vm = await waitForState(vms, "poweroff", VmState.VM_STATE_STOPPED, 30_000);
    expect(vm.stateReason).toMatch(/power/);
    await call(vms, vms.deleteVm, { vmId: "poweroff", force: false });
  });

  it("a guest writing the ACPI soft-off or reset value to its ports is STOPPED with the reason", async () => {
    // mov dx, PORT; mov al, VALUE; out dx, al; hlt; jmp $-1 (32-bit protected mode)
    const guest = (port: number, value: number) => Buffer.from([0x66, 0xba, port & 0xff, port >> 8, 0xb0, value, 0xee, 0xf4, 0xeb, 0xfd]);
    const cases: [string, Buffer, RegExp][] = [
      ["acpi-off", guest(0x600, 0x20 | (5 << 2)), /^guest power-off \(ACPI\)$/], // SLP_EN | SLP_TYP 5
      ["acpi-reset", guest(0x602, 0x06), /^guest reset \(ACPI\)$/],
    ];
    for (const [vmId, image, reason] of cases) {
      await createVm(vms, vmId, {
        name: vmId, vcpus: 1, memoryBytes: 4n << 20n, labels: {}, imageCompression: 0, cpuWeight: 0,
        boot: { $case: "flatImage", value: { image, loadAddress: 0x200000n, entryAddress: 0n, mode: CpuMode.CPU_MODE_PROTECTED } },
      });
      const vm = await waitForState(vms, vmId, VmState.VM_STATE_STOPPED, 30_000);
      expect(vm.stateReason).toMatch(reason);
      await call(vms, vms.deleteVm, { vmId, force: false });
    }
  });

  it("a long-mode guest's POPCNT gives the right count (kvm-pvm cannot emulate it; the helper completes it there)", async () => {
    const guest = Buffer.from([
      0xbc, 0x00, 0x00, 0x30, 0x00, // mov esp, 0x300000
      0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
      0xbf, 0xff, 0x00, 0x00, 0x00, // mov edi, 0xff
      0xf3, 0x48, 0x0f, 0xb8, 0xc7, // popcnt rax, rdi
      0x04, 0x30, 0xee, // add al, '0'; out dx, al
      0x31, 0xc9, // xor ecx, ecx
      0xf3, 0x0f, 0xb8, 0xc1, // popcnt eax, ecx (0, ZF set)
      0x9c, 0x58, 0x48, 0xc1, 0xe8, 0x06, 0x24, 0x01, // pushfq; pop rax; shr rax, 6; and al, 1 (ZF)
      0x04, 0x30, 0xee, // add al, '0'; out dx, al
      0xb0, 0x0a, 0xee, 0xf4, 0xeb, 0xfd, // '\n'; hlt; jmp back
    ]);
    const vmId = "popcnt";
    await createVm(vms, vmId, {
      name: vmId, vcpus: 1, memoryBytes: 4n << 20n, labels: {}, imageCompression: 0, cpuWeight: 0,
      boot: { $case: "flatImage", value: { image: guest, loadAddress: 0x200000n, entryAddress: 0n, mode: CpuMode.CPU_MODE_LONG } },
    });
    const con = attachConsole(vms, vmId);
    await con.waitFor("\n");
    expect(con.text()).toBe("81\n");
    con.close();
    await call(vms, vms.deleteVm, { vmId, force: true });
  });

  it("boots a flat image in long and in protected mode", async () => {
    for (const mode of [CpuMode.CPU_MODE_LONG, CpuMode.CPU_MODE_PROTECTED]) {
      const vmId = `flat-${mode}`;
      await createVm(vms, vmId, {
        name: vmId,
        vcpus: 1,
        memoryBytes: 4n << 20n,
        boot: { $case: "flatImage", value: { image: TINY_GUEST, loadAddress: 0x200000n, entryAddress: 0n, mode } },
        labels: { suite: "flat" },
        imageCompression: 0,
        cpuWeight: 0,
      });
      const con = attachConsole(vms, vmId);
      await con.waitFor("Q\n");
      const vm = await call(vms, vms.getVm, { vmId });
      expect(vm.imageSha256).toMatch(/^[0-9a-f]{64}$/);
      con.close();
    }
    const { vms: flat } = await call(vms, vms.listVms, { state: 0, labelSelector: { suite: "flat" } });
    expect(flat).toHaveLength(2);
    for (const vm of flat) await call(vms, vms.deleteVm, { vmId: vm.vmId, force: true });
  });

  it("several console attachments see the same output; the scrollback comes first", async () => {
    await createVm(vms, "consoles");
    const a = attachConsole(vms, "consoles");
    await a.waitFor("qumra demo guest\n");
    const b = attachConsole(vms, "consoles");
    await b.waitFor("qumra demo guest\n"); // scrollback
    a.send("?");
    await a.waitFor("pong 0");
    await b.waitFor("pong 0");
    a.close();
    b.close();
    await call(vms, vms.deleteVm, { vmId: "consoles", force: true });
  });

  it("answers bad requests with the right status and keeps the VM running", async () => {
    await createVm(vms, "strict");
    const code = async (p: Promise<unknown>) => p.then(() => "OK", (e: grpc.ServiceError) => `${grpc.status[e.code]}: ${e.details}`);
    const bad = {
      badId: await code(call(vms, vms.createVm, { vmId: "Bad_ID", requestId: "r", spec: demoSpec("x") })),
      noBoot: await code(call(vms, vms.createVm, { vmId: "noboot", requestId: "r", spec: { ...demoSpec("x"), boot: undefined } })),
      hugeMemory: await code(call(vms, vms.createVm, { vmId: "huge", requestId: "r", spec: demoSpec("x", { memoryBytes: 1n << 50n }) })),
      oddMemory: await code(call(vms, vms.createVm, { vmId: "odd", requestId: "r", spec: demoSpec("x", { memoryBytes: 1000n }) })),
      tooManyVcpus: await code(call(vms, vms.createVm, { vmId: "wide", requestId: "r", spec: demoSpec("x", { vcpus: 100_000 }) })),
      entryOutside: await code(call(vms, vms.createVm, { vmId: "entry", requestId: "r", spec: { ...demoSpec("x"), boot: { $case: "flatImage", value: { image: TINY_GUEST, loadAddress: 0x100000n, entryAddress: 0x90000n, mode: CpuMode.CPU_MODE_LONG } } } })),
      unknown: await code(call(vms, vms.getVm, { vmId: "nope" })),
      startTwice: await code(call(vms, vms.startVm, { vmId: "strict" })),
      resumeRunning: await code(call(vms, vms.resumeVm, { vmId: "strict" })),
      regsWhileRunning: await code(call(vms, vms.getVcpuState, { vmId: "strict", vcpu: 0 })),
      readZero: await code(call(vms, vms.readMemory, { vmId: "strict", address: 0n, length: 0 })),
      readTooMuch: await code(call(vms, vms.readMemory, { vmId: "strict", address: 0n, length: (1 << 20) + 1 })),
      readOutside: await code(call(vms, vms.readMemory, { vmId: "strict", address: 32n << 20n, length: 16 })),
      writeOutside: await code(call(vms, vms.writeMemory, { vmId: "strict", address: (32n << 20n) - 4n, data: Buffer.alloc(8) })),
      deleteRunning: await code(call(vms, vms.deleteVm, { vmId: "strict", force: false })),
      stopTimeout: await code(call(vms, vms.stopVm, { vmId: "strict", force: false, timeoutMs: 700_000 })),
    };
    expect(bad.badId).toMatch(/^INVALID_ARGUMENT: vm_id 'Bad_ID' is invalid/);
    expect(bad.noBoot).toMatch(/^INVALID_ARGUMENT: spec.boot is missing/);
    expect(bad.hugeMemory).toMatch(/^RESOURCE_EXHAUSTED: spec.memory_bytes .* more than this host can give/);
    expect(bad.oddMemory).toMatch(/^INVALID_ARGUMENT: spec.memory_bytes 1000/);
    expect(bad.tooManyVcpus).toMatch(/^RESOURCE_EXHAUSTED: spec.vcpus 100000/);
    expect(bad.entryOutside).toMatch(/^INVALID_ARGUMENT: spec.flat_image.entry_address 0x90000 is outside the image/);
    expect(bad.unknown).toMatch(/^NOT_FOUND: no VM 'nope'/);
    expect(bad.startTwice).toMatch(/^FAILED_PRECONDITION: cannot start VM 'strict': it is RUNNING/);
    expect(bad.resumeRunning).toMatch(/^FAILED_PRECONDITION: .* it is RUNNING/);
    expect(bad.regsWhileRunning).toMatch(/^FAILED_PRECONDITION: cannot read registers of VM 'strict': it is RUNNING/);
    expect(bad.readZero).toMatch(/^INVALID_ARGUMENT: length 0/);
    expect(bad.readTooMuch).toMatch(/^INVALID_ARGUMENT: length 1048577/);
    expect(bad.readOutside).toMatch(/^OUT_OF_RANGE: guest-physical range/);
    expect(bad.writeOutside).toMatch(/^OUT_OF_RANGE/);
    expect(bad.deleteRunning).toMatch(/^FAILED_PRECONDITION: cannot delete VM 'strict': it is RUNNING/);
    expect(bad.stopTimeout).toMatch(/^INVALID_ARGUMENT: timeout_ms 700000/);

    await call(vms, vms.pauseVm, { vmId: "strict" });
    expect(await code(call(vms, vms.getVcpuState, { vmId: "strict", vcpu: 3 }))).toMatch(/^INVALID_ARGUMENT: vcpu 3 is out of range/);
    await call(vms, vms.resumeVm, { vmId: "strict" });

    const vm = await call(vms, vms.getVm, { vmId: "strict" });
    expect(vm.state).toBe(VmState.VM_STATE_RUNNING);
    const con = attachConsole(vms, "strict");
    con.send("?");
    await con.waitFor("pong 0");
    con.close();
    await call(vms, vms.deleteVm, { vmId: "strict", force: true });
  });

  it("WatchVms sends snapshots first, then numbered events, and resumes from a sequence number", async () => {
    const events = watch(vms, {}, (es) => es.some((e) => e.vmId === "watched" && e.state === VmState.VM_STATE_RUNNING && e.type === VmEventType.VM_EVENT_TYPE_STATE_CHANGED));
    await new Promise((r) => setTimeout(r, 100));
    await createVm(vms, "watched");
    const seen = await events;
    const numbered = seen.filter((e) => e.type !== VmEventType.VM_EVENT_TYPE_SNAPSHOT);
    expect(numbered.map((e) => e.type)).toEqual([VmEventType.VM_EVENT_TYPE_CREATED, VmEventType.VM_EVENT_TYPE_STATE_CHANGED]);
    expect(numbered[1].sequence).toBe(numbered[0].sequence + 1n);

    await call(vms, vms.pauseVm, { vmId: "watched" });
    const resumed = await watch(vms, { fromSequence: numbered[1].sequence }, (es) => es.length >= 1);
    expect(resumed[0]).toMatchObject({ type: VmEventType.VM_EVENT_TYPE_STATE_CHANGED, vmId: "watched", state: VmState.VM_STATE_PAUSED, sequence: numbered[1].sequence + 1n });

    const snap = await watch(vms, { vmId: "watched" }, (es) => es.length >= 1);
    expect(snap[0]).toMatchObject({ type: VmEventType.VM_EVENT_TYPE_SNAPSHOT, state: VmState.VM_STATE_PAUSED });
    await call(vms, vms.deleteVm, { vmId: "watched", force: true });
  });
});

describe.skipIf(!hasKvm)("agent restart", () => {
  it("kill -9 of the agent loses no VM: a new agent re-attaches to the helper and its console", async () => {
    const first = await startAgent();
    const c1 = new VmServiceClient(first.address!, grpc.credentials.createInsecure());
    const vm = await createVm(c1, "survivor");
    const con1 = attachConsole(c1, "survivor");
    await con1.waitFor("qumra demo guest\n");
    c1.close();
    await first.stop("SIGKILL");

    const second = await startAgent([], { stateDir: first.stateDir, runtimeDir: first.runtimeDir });
    const c2 = new VmServiceClient(second.address!, grpc.credentials.createInsecure());
    try {
      const again = await call(c2, c2.getVm, { vmId: "survivor" });
      expect(again.state).toBe(VmState.VM_STATE_RUNNING);
      expect(again.helperPid).toBe(vm.helperPid);
      const con2 = attachConsole(c2, "survivor");
      await con2.waitFor("qumra demo guest\n"); // the scrollback from before the restart
      con2.send("?");
      await con2.waitFor("pong 0");
      con2.close();
      expect((await call(c2, c2.stopVm, { vmId: "survivor", force: true, timeoutMs: 0 })).state).toBe(VmState.VM_STATE_STOPPED);
    } finally {
      await call(c2, c2.deleteVm, { vmId: "survivor", force: true }).catch(() => undefined);
      c2.close();
      await second.stop();
      cleanup(first.stateDir, first.runtimeDir);
    }
  });

  it("a helper that died while the agent was down is reported CRASHED", async () => {
    const first = await startAgent();
    const c1 = new VmServiceClient(first.address!, grpc.credentials.createInsecure());
    const vm = await createVm(c1, "lost");
    c1.close();
    await first.stop("SIGKILL");
    process.kill(vm.helperPid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 200));

    const second = await startAgent([], { stateDir: first.stateDir, runtimeDir: first.runtimeDir });
    const c2 = new VmServiceClient(second.address!, grpc.credentials.createInsecure());
    const again = await call(c2, c2.getVm, { vmId: "lost" });
    expect(again.state).toBe(VmState.VM_STATE_CRASHED);
    expect(again.stateReason).toMatch(/was gone when the agent restarted/);
    await call(c2, c2.deleteVm, { vmId: "lost", force: false });
    c2.close();
    await second.stop();
    cleanup(first.stateDir, first.runtimeDir);
  });
});
