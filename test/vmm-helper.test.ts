// Drives the real qumra-vmm on the real /dev/kvm through the TypeScript client.
// Waits on events (console markers), never on guest speed: guest code is emulated on kvm-pvm hosts.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hasKvm } from "./helpers/kvm.js";
import { consoleLog, reapHelpers, spawnTracked, type TrackedHelper, type ConsoleLog } from "./helpers/helper-vm.js";

afterAll(reapHelpers);
import { HelperClient } from "../agent/src/vm/helper-client.js";
import { HelperError } from "../agent/src/vm/helper-errors.js";
import { DEMO_CELL_ADDR, GuestCommand, HELPER_REGISTER_NAMES, MsgType, type HelperEvent } from "../agent/src/vm/helper-protocol.js";
import { isAlive, vmmBinaryPath, type SpawnedHelper } from "../agent/src/vm/helper-process.js";
import { probeKvm } from "../agent/src/host/kvm-probe.js";




async function startDemo(opts: { vcpus?: number; memory?: number } = {}): Promise<{ h: TrackedHelper; c: HelperClient; con: ConsoleLog }> {
  const { h } = await spawnTracked("qvmm-", { demo: true, vcpus: opts.vcpus ?? 1, memoryBytes: opts.memory ?? 32 << 20 });
  const c = await HelperClient.connect(h.controlPath, { secret: h.secret });
  const con = consoleLog(c);
  await c.start();
  await con.waitFor("qumra demo guest\n");
  return { h, c, con };
}

async function waitExit(pid: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (isAlive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  expect(isAlive(pid)).toBe(false);
}


describe.skipIf(!hasKvm)("qumra-vmm helper on real KVM", () => {
  it("probes KVM as JSON", async () => {
    const p = await probeKvm(vmmBinaryPath());
    expect(p.available).toBe(true);
    expect(p.apiVersion).toBe(12);
    expect(p.capabilities.length).toBeGreaterThanOrEqual(25);
    const names = p.capabilities.map((c) => c.name);
    for (const n of ["IRQCHIP", "HLT", "USER_MEMORY", "IMMEDIATE_EXIT", "BINARY_STATS_FD"]) expect(names).toContain(n);
    const missing = await probeKvm(vmmBinaryPath(), "/dev/does-not-exist");
    expect(missing.available).toBe(false);
    expect(missing.error).toMatch(/No such file/);
  });

  it("boots the demo guest, pauses with stable registers, observes a register and memory written while paused, stops", async () => {
    const { h, c, con } = await startDemo();
    expect((await c.status()).state).toBe("running");
    await expect(c.getRegs(0)).rejects.toMatchObject({ code: "WRONG_STATE" });

    await c.pause();
    expect((await c.status()).state).toBe("paused");
    const r1 = await c.getRegs(0);
    const r2 = await c.getRegs(0);
    expect(r1.rip).toBe(r2.rip);
    expect(r1.rip).toBeGreaterThanOrEqual(0x100000n);
    expect(r1["cs.l"]).toBe(1n);
    expect(Object.keys(r1)).toEqual(HELPER_REGISTER_NAMES); // the generated list is the helper's, in its order
    expect(r1.efer & 0x500n).toBe(0x500n);

    const marker = 0x5eed_cafe_f00d_1234n;
    const cell = Buffer.alloc(8);
    cell.writeBigUInt64LE(marker);
    await c.writeMemory(DEMO_CELL_ADDR, cell);
    expect((await c.readMemory(DEMO_CELL_ADDR, 8)).equals(cell)).toBe(true);
    const set = await c.setRegs(0, { r15: 0xabcdefn });
    expect(set.r15).toBe(0xabcdefn);

    await c.resume();
    await c.guestCommand(GuestCommand.PEEK);
    await con.waitFor(`cell=0x${marker.toString(16).padStart(16, "0")}`);
    await con.waitFor("r15=0x0000000000abcdef");

    const stats = await c.stats();
    expect(stats.vcpus[0].exits.io).toBeGreaterThan(10);
    expect(stats.devices.serial.txBytes).toBeGreaterThan(16);

    const scroll = await c.consoleRead(4096);
    expect(scroll.toString()).toContain("qumra demo guest");

    const res = await c.stop(5000);
    expect(res).toEqual({ forced: false, exitStatus: 0 });
    await waitExit(h.pid);
  });

  it("echoes serial input and reports keyboard scancodes", async () => {
    const { c, con } = await startDemo();
    await c.guestCommand(GuestCommand.ECHO, 1);
    await con.waitFor("echo on\n");
    expect(await c.consoleWrite("hello-serial\n")).toBe(13);
    await con.waitFor("hello-serial\n");
    expect(await c.keyboard(Uint8Array.from([0x1c]))).toBe(1);
    await con.waitFor("kbd 0x1c\n");
    await c.stop(5000);
  });

  it("answers bad requests with errors and keeps the VM running", async () => {
    const { h, c } = await startDemo();
    await expect(c.request(99)).rejects.toMatchObject({ code: "UNKNOWN_TYPE" });
    await expect(c.readMemory(1n << 40n, 16)).rejects.toMatchObject({ code: "OUT_OF_RANGE" });
    await expect(c.readMemory((32 << 20) - 8, 16)).rejects.toMatchObject({ code: "OUT_OF_RANGE" });
    await expect(c.readMemory(0, (1 << 20) + 1)).rejects.toMatchObject({ code: "TOO_LARGE" });
    await expect(c.request(MsgType.READ_MEM, Buffer.alloc(3))).rejects.toMatchObject({ code: "BAD_MESSAGE" });
    const lying = Buffer.alloc(20);
    lying.writeUInt32LE(1000, 8); // claims 1000 bytes, carries 4
    await expect(c.request(MsgType.WRITE_MEM, lying)).rejects.toMatchObject({ code: "BAD_MESSAGE" });
    await expect(c.request(MsgType.GET_REGS, Buffer.from("not json"))).rejects.toMatchObject({ code: "BAD_MESSAGE" });
    await expect(c.request(MsgType.GUEST_COMMAND, Buffer.alloc(2))).rejects.toMatchObject({ code: "BAD_MESSAGE" });
    await expect(c.resume()).rejects.toMatchObject({ code: "WRONG_STATE" });
    await expect(c.start()).rejects.toMatchObject({ code: "WRONG_STATE" });
    await c.pause();
    await expect(c.getRegs(7)).rejects.toMatchObject({ code: "OUT_OF_RANGE" });
    await expect(c.setRegs(0, { nosuchreg: 1n })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(c.setRegs(0, { "cs.dpl": 9n })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await c.resume();

    // An oversized length: an error reply, then the helper drops this connection.
    const closed = new Promise<HelperError>((r) => c.once("close", r));
    const unattributed = c.waitFor((e: HelperEvent) => e.kind === "unknown", 10_000);
    const hdr = Buffer.alloc(12);
    hdr.writeUInt32LE(0xfffffff0, 0);
    hdr.writeUInt16LE(MsgType.STATUS, 4);
    hdr.writeUInt32LE(4242, 8);
    c.sendRaw(hdr);
    const err = (await unattributed) as Extract<HelperEvent, { kind: "unknown" }>;
    expect(JSON.parse(err.payload.toString()).name).toBe("TOO_LARGE");
    expect((await closed).code).toBe("CONNECTION_CLOSED");

    // Garbage bytes from a fresh connection: same treatment.
    const g = await HelperClient.connect(h.controlPath, { secret: h.secret });
    const gClosed = new Promise<HelperError>((r) => g.once("close", r));
    g.sendRaw(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await gClosed;

    // Requests before HELLO are refused (raw socket check through a fresh client is implicit:
    // the client always says HELLO); the VM is still running and obeys commands.
    const c2 = await HelperClient.connect(h.controlPath, { secret: h.secret });
    const con2 = consoleLog(c2);
    expect((await c2.status()).state).toBe("running");
    await c2.guestCommand(GuestCommand.PING, 77);
    await con2.waitFor("pong 77\n");
    await c2.stop(5000);
    await waitExit(h.pid);
  });

  it("survives the client disconnecting and accepts a re-attach while running", async () => {
    const { h, c } = await startDemo();
    c.close();
    await new Promise((r) => setTimeout(r, 200));
    expect(isAlive(h.pid)).toBe(true);
    const c2 = await HelperClient.connect(h.controlPath, { secret: h.secret });
    expect(c2.hello?.state).toBe("running");
    const con = consoleLog(c2);
    await c2.guestCommand(GuestCommand.PING, 5);
    await con.waitFor("pong 5\n");
    expect((await c2.consoleRead()).toString()).toContain("qumra demo guest");
    await c2.stop(5000);
    await waitExit(h.pid);
  });

  it("reports a triple fault with its rip and stays up answering until stopped", async () => {
    const { h, c } = await startDemo();
    const tf = c.waitFor((e: HelperEvent) => e.kind === "tripleFault");
    await c.guestCommand(GuestCommand.TRIPLE_FAULT);
    const e = (await tf) as Extract<HelperEvent, { kind: "tripleFault" }>;
    expect(e.rip).toBeGreaterThanOrEqual(0x100000n);
    expect(e.message).toMatch(/triple fault.*rip=0x/);
    const st = await c.status();
    expect(st.state).toBe("crashed");
    expect(st.reason).toMatch(/triple fault/);
    expect((await c.getRegs(0)).rip).toBe(e.rip);
    expect(await c.stop(1000)).toEqual({ forced: false, exitStatus: 4 });
    await waitExit(h.pid);
  });

  it("forces the stop of a guest that does not acknowledge power-off", async () => {
    const { h, c, con } = await startDemo();
    await c.guestCommand(GuestCommand.HALT);
    await con.waitFor("halt\n");
    expect(await c.stop(500)).toEqual({ forced: true, exitStatus: 3 });
    await waitExit(h.pid);
  });

  it("pauses a spinning guest and sees a guest-initiated power-off", async () => {
    const { c, con } = await startDemo();
    await c.guestCommand(GuestCommand.SPIN);
    await con.waitFor("spin\n");
    await c.pause();
    const a = await c.getRegs(0);
    expect((await c.getRegs(0)).rip).toBe(a.rip);
    await c.resume();
    const off = c.waitFor((e: HelperEvent) => e.kind === "poweroff");
    await c.guestCommand(GuestCommand.POWEROFF);
    expect(((await off) as Extract<HelperEvent, { kind: "poweroff" }>).source).toBe("guest");
    expect((await c.status()).state).toBe("stopped");
    expect(await c.stop()).toEqual({ forced: false, exitStatus: 0 });
  });

  it("notices kill -9 of the helper as a socket close", async () => {
    const { h, c } = await startDemo();
    const closed = new Promise<HelperError>((r) => c.once("close", r));
    const pending = c.consoleRead(16).catch((e: unknown) => e);
    process.kill(h.pid, "SIGKILL");
    expect((await closed).code).toBe("CONNECTION_CLOSED");
    const r = await pending;
    if (r instanceof HelperError) expect(r.code).toBe("CONNECTION_CLOSED");
    await expect(c.status()).rejects.toMatchObject({ code: "CONNECTION_CLOSED" });
  });

  it("runs four helpers at once", async () => {
    const vms = await Promise.all([0, 1, 2, 3].map((i) => startDemo({ vcpus: 1 + (i % 2) })));
    await Promise.all(
      vms.map(async ({ c, con }, i) => {
        await c.guestCommand(GuestCommand.PING, 100 + i);
        await con.waitFor(`pong ${100 + i}\n`);
      }),
    );
    const results = await Promise.all(vms.map(({ c }) => c.stop(5000)));
    for (const r of results) expect(r.exitStatus).toBe(0);
    await Promise.all(vms.map(({ h }) => waitExit(h.pid)));
  });

  it("measures port-exit throughput through the helper (vs the bare loop)", async () => {
    const n = 100_000;
    const { c, con } = await startDemo();
    const t0 = process.hrtime.bigint();
    await c.guestCommand(GuestCommand.EXITS, n);
    await con.waitFor(`exits done ${n}\n`, 0, 120_000);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const stats = await c.stats();
    expect(stats.devices.debug.bench).toBe(n);
    const helperRate = n / secs;
    let bare = "n/a";
    const bench = path.join(path.dirname(vmmBinaryPath()), "kvm-exit-loop");
    if (existsSync(bench)) bare = execFileSync(bench, [String(n)]).toString().trim();
    const rss = (await import("node:fs")).readFileSync(`/proc/${c.hello?.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)?.[1];
    console.log(`helper: ${Math.round(helperRate)} exits/s (${n} exits in ${secs.toFixed(3)} s), RSS ${rss} kB; bare: ${bare}`);
    await c.stop(5000);
  });
});

void os;
