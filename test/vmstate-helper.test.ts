// The helper's VM state ops on real KVM, through its control socket and inside its sandbox:
// SAVE_STATE / LOAD_STATE (chunked), RAM_MAP, RAM_CHECKSUM, and what each refuses.
import { describe, it, expect, afterAll } from "vitest";
import { crc32 } from "node:zlib";
import { HelperClient } from "../agent/src/vm/helper-client.js";
import { HelperError } from "../agent/src/vm/helper-errors.js";
import { MsgType, STATE_CHUNK, encodeLoadState, encodeSaveState } from "../agent/src/vm/helper-protocol.js";
import { parseStateHeader } from "../agent/src/vm/state-blob.js";
import { hasKvm } from "./helpers/kvm.js";
import { consoleLog, reapHelpers, spawnTracked } from "./helpers/helper-vm.js";

const MEM = 32 << 20;

async function demo(fb = { fbWidth: 320, fbHeight: 200 }) {
  const { h } = await spawnTracked("qvmst-", { demo: true, vcpus: 1, memoryBytes: MEM, ...fb });
  const c = await HelperClient.connect(h.controlPath, { secret: h.secret });
  return { h, c, con: consoleLog(c, 60_000) };
}

async function refusal(p: Promise<unknown>): Promise<HelperError> {
  try {
    await p;
  } catch (err) {
    return err as HelperError;
  }
  throw new Error("expected a refusal");
}

/** The CRC-32 of all RAM rebuilt from RAM_MAP + READ_MEM (holes as zeros), as RAM_CHECKSUM defines it. */
async function crcFromMap(c: HelperClient): Promise<number> {
  const ranges = await c.ramMap();
  let crc = 0;
  let at = 0;
  const zeros = Buffer.alloc(1 << 20);
  const offsetOf = (gpa: number) => (gpa >= 0x1_0000_0000 ? 0xc000_0000 + gpa - 0x1_0000_0000 : gpa);
  for (const r of ranges) {
    for (const off = offsetOf(r.gpa); at < off; ) {
      const n = Math.min(zeros.length, off - at);
      crc = crc32(zeros.subarray(0, n), crc);
      at += n;
    }
    for (let o = 0; o < r.length; o += 1 << 20) crc = crc32(await c.readMemory(r.gpa + o, Math.min(1 << 20, r.length - o)), crc);
    at += r.length;
  }
  while (at < MEM) {
    const n = Math.min(zeros.length, MEM - at);
    crc = crc32(zeros.subarray(0, n), crc);
    at += n;
  }
  return crc >>> 0;
}

describe.skipIf(!hasKvm)("helper VM state ops on real KVM", () => {
  afterAll(() => reapHelpers());

  it("SAVE_STATE only while paused or created; RAM_MAP and RAM_CHECKSUM agree with READ_MEM", async () => {
    const { c, con } = await demo();
    const created = await c.saveState();
    const hdr = parseStateHeader(created);
    expect("problem" in hdr ? hdr.problem : hdr.vcpus).toBe(1);
    await c.start();
    await con.waitFor("qumra demo guest\n");
    const running = await refusal(c.saveState());
    expect(running.code).toBe("WRONG_STATE");
    expect(running.message).toMatch(/running: its state is saved only while paused/);
    // Later chunks need a first one, and a state taken before the VM ran again is gone.
    expect((await refusal(c.request(MsgType.SAVE_STATE, encodeSaveState(100)))).code).toBe("WRONG_STATE");
    await c.pause();
    const blob = await c.saveState();
    expect(blob.length).toBeGreaterThan(320 * 200 * 4); // the framebuffer's pixels are in it
    expect((await refusal(c.request(MsgType.SAVE_STATE, encodeSaveState(blob.length + 1)))).code).toBe("OUT_OF_RANGE");
    expect((await refusal(c.request(MsgType.SAVE_STATE, encodeSaveState(0, 0)))).code).toBe("INVALID_ARGUMENT");
    const sum = await c.ramChecksum();
    expect(sum).toMatchObject({ algorithm: "crc32", bytes: MEM });
    expect(sum.dataBytes).toBeGreaterThan(0);
    expect(sum.dataBytes).toBeLessThan(4 << 20); // only what the loader and the guest touched
    expect(await crcFromMap(c)).toBe(sum.crc32);
    const ranges = await c.ramMap();
    expect(ranges.reduce((n, r) => n + r.length, 0)).toBe(sum.dataBytes);
    for (const r of ranges) expect(r.gpa % 4096 === 0 && r.length % 4096 === 0).toBe(true);
    await c.stop(0);
  });

  it("LOAD_STATE (with RAM put back) into a paused VM takes it back to the saved point: the counter repeats", async () => {
    const { c, con } = await demo();
    await c.start();
    await con.waitFor("qumra demo guest\n");
    await c.consoleWrite("t");
    await con.waitFor("tick 2\n");
    await c.pause();
    const blob = await c.saveState();
    const ram = await c.ramChecksum();
    const regs = await c.getRegs(0);
    const saved: { gpa: number; data: Buffer }[] = [];
    for (const r of await c.ramMap()) for (let o = 0; o < r.length; o += 1 << 20) saved.push({ gpa: r.gpa + o, data: await c.readMemory(r.gpa + o, Math.min(1 << 20, r.length - o)) });
    await c.resume();
    await con.waitFor("tick 4\n");
    await c.pause();
    expect((await c.ramChecksum()).crc32).not.toBe(ram.crc32);
    // RAM back as it was (zeros where the guest wrote since), then the state.
    for (const r of await c.ramMap()) for (let o = 0; o < r.length; o += 1 << 20) await c.writeMemory(r.gpa + o, Buffer.alloc(Math.min(1 << 20, r.length - o)));
    for (const { gpa, data } of saved) await c.writeMemory(gpa, data);
    expect((await c.ramChecksum()).crc32).toBe(ram.crc32);
    await c.loadState(blob);
    const status = await c.status();
    expect(status.state).toBe("paused");
    expect(status.reason).toBe("state loaded");
    expect(await c.getRegs(0)).toEqual(regs);
    // The console ring is the saved one again: its last tick is 2.
    expect((await c.consoleRead(4096)).toString("latin1").endsWith("tick 2\n")).toBe(true);
    const mark = con.text().length;
    await c.resume();
    await con.waitFor("tick 3\n", mark);
    expect(con.text().slice(mark).startsWith("tick 3\n")).toBe(true);
    await c.stop(0);
  });

  it("a saved state loads into a fresh created helper: same registers, same RAM, same screen", async () => {
    const a = await demo();
    await a.c.start();
    await a.con.waitFor("qumra demo guest\n");
    await a.c.pause();
    const blob = await a.c.saveState();
    const ranges = await a.c.ramMap();
    const ram = await a.c.ramChecksum();
    const regs = await a.c.getRegs(0);
    const b = await demo();
    for (const r of ranges) for (let o = 0; o < r.length; o += 1 << 20) await b.c.writeMemory(r.gpa + o, await a.c.readMemory(r.gpa + o, Math.min(1 << 20, r.length - o)));
    let chunks = 0;
    await b.c.loadState(blob, () => chunks++);
    expect(chunks).toBe(Math.ceil(blob.length / STATE_CHUNK));
    expect((await b.c.status()).state).toBe("paused");
    expect(await b.c.getRegs(0)).toEqual(regs);
    expect((await b.c.ramChecksum()).crc32).toBe(ram.crc32);
    const [ia, ib] = await Promise.all([a.c.displayInfo(), b.c.displayInfo()]);
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(ib.path).equals(readFileSync(ia.path))).toBe(true);
    // START is for a created VM; this one is paused at the saved point.
    expect((await refusal(b.c.start())).code).toBe("WRONG_STATE");
    await b.c.resume();
    const mark = b.con.text().length;
    await b.c.consoleWrite("?");
    await b.con.waitFor("pong 0\n", mark);
    await a.c.stop(0);
    await b.c.stop(0);
  });

  it("refuses garbage, truncated, other-shape and out-of-order uploads, and the VM is unchanged", async () => {
    const a = await demo();
    const blob = await a.c.saveState();
    const b = await demo();
    const other = await demo({ fbWidth: 640, fbHeight: 480 });
    const refused = async (bytes: Buffer) => refusal(b.c.loadState(bytes));
    const garbage = Buffer.from(blob);
    garbage.fill(0x41, 0, 8);
    expect((await refused(garbage)).message).toMatch(/state refused, nothing changed: not a qumra VM state \(bad magic\)/);
    const flipped = Buffer.from(blob);
    flipped[blob.length - 5] ^= 1;
    expect((await refused(flipped)).message).toMatch(/checksum mismatch/);
    const version = Buffer.from(blob);
    version.writeUInt32LE(7, 8);
    expect((await refused(version)).message).toMatch(/format version 7/);
    // A 320x200 VM's state into a 640x480 one.
    expect((await refusal(other.c.loadState(blob))).message).toMatch(/state has a 320x200 framebuffer, this VM 640x480/);
    const short = blob.subarray(0, blob.length - 100);
    expect((await refused(Buffer.from(short))).message).toMatch(/truncated/);
    // Announced 1000 bytes, sent 10: the next chunk must start at 10.
    await b.c.request(MsgType.LOAD_STATE, encodeLoadState(1000, 0, Buffer.alloc(10)));
    const order = await refusal(b.c.request(MsgType.LOAD_STATE, encodeLoadState(1000, 20, Buffer.alloc(10))));
    expect(order.message).toMatch(/expected the chunk at offset 10 of 1000 bytes/);
    expect((await refusal(b.c.request(MsgType.LOAD_STATE, encodeLoadState(1000, 995, Buffer.alloc(10))))).code).toBe("OUT_OF_RANGE");
    expect((await refusal(b.c.request(MsgType.LOAD_STATE, encodeLoadState(200 << 20, 0, Buffer.alloc(10))))).code).toBe("TOO_LARGE");
    expect((await refusal(b.c.request(MsgType.LOAD_STATE, Buffer.alloc(3)))).code).toBe("BAD_MESSAGE");
    // Nothing changed: still created, and it boots as usual.
    expect((await b.c.status()).state).toBe("created");
    await b.c.start();
    await b.con.waitFor("qumra demo guest\n");
    expect((await refusal(b.c.loadState(blob))).code).toBe("WRONG_STATE"); // running
    await a.c.stop(0);
    await b.c.stop(0);
    await other.c.stop(0);
  });
});
