// The control protocol's pure side (agent/src/vm/helper-protocol.ts): framing and every payload codec,
// on valid and malformed bytes, without a socket or a helper.
import { describe, expect, it } from "vitest";
import { HelperError } from "../agent/src/vm/helper-errors.js";
import {
  EventType,
  Flags,
  HEADER_SIZE,
  HELPER_REGISTER_NAMES,
  MAX_PAYLOAD,
  MsgType,
  decodeAccepted,
  decodeDirty,
  decodeDisplayInfo,
  decodeErrorReply,
  decodeEvent,
  decodeHeader,
  decodeRegs,
  decodeStats,
  decodeStatus,
  decodeStopResult,
  encodeConsoleRead,
  encodeFrame,
  encodeGuestCommand,
  encodePointer,
  encodeReadMemory,
  encodeSetRegs,
  encodeWriteMemory,
  splitFrames,
} from "../agent/src/vm/helper-protocol.js";

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const protocolError = (fn: () => unknown, message: RegExp) => {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(HelperError);
  expect((thrown as HelperError).code).toBe("PROTOCOL");
  expect((thrown as HelperError).message).toMatch(message);
};

/** A DIRTY reply as the helper builds it: u32 pages, then little-endian u64 words of the KVM dirty log. */
function dirtyReply(pages: number, dirty: number[]): Buffer {
  const words = new BigUint64Array(Math.ceil(pages / 64));
  for (const p of dirty) words[p >> 6] |= 1n << BigInt(p & 63);
  const out = Buffer.alloc(4 + words.length * 8);
  out.writeUInt32LE(pages, 0);
  words.forEach((w, i) => out.writeBigUInt64LE(w, 4 + i * 8));
  return out;
}

describe("framing", () => {
  it("encodes a little-endian header before the payload and decodes it back", () => {
    const frame = encodeFrame(MsgType.READ_MEM, Flags.REPLY | Flags.ERROR, 0xdeadbeef, Buffer.from("abc"));
    expect([...frame.subarray(0, HEADER_SIZE)]).toEqual([3, 0, 0, 0, 9, 0, 3, 0, 0xef, 0xbe, 0xad, 0xde]);
    expect(frame.subarray(HEADER_SIZE).toString()).toBe("abc");
    expect(decodeHeader(frame)).toEqual({ length: 3, type: MsgType.READ_MEM, flags: Flags.REPLY | Flags.ERROR, id: 0xdeadbeef });
    protocolError(() => decodeHeader(frame.subarray(0, HEADER_SIZE - 1)), /12 bytes/);
  });

  it("splits complete frames off a stream and keeps the incomplete tail", () => {
    const a = encodeFrame(MsgType.STATUS, Flags.REPLY, 1, json({ x: 1 }));
    const b = encodeFrame(EventType.CONSOLE, Flags.EVENT, 7, Buffer.from("hi"));
    const c = encodeFrame(MsgType.DIRTY, Flags.REPLY, 2, Buffer.alloc(100, 0xaa));
    const stream = Buffer.concat([a, b, c]);
    const cut = a.length + b.length + HEADER_SIZE + 10; // inside c's payload
    const first = splitFrames(stream.subarray(0, cut));
    expect(first.frames.map((f) => [f.type, f.flags, f.id, f.payload.toString("latin1")])).toEqual([
      [MsgType.STATUS, Flags.REPLY, 1, '{"x":1}'],
      [EventType.CONSOLE, Flags.EVENT, 7, "hi"],
    ]);
    expect(first.rest.length).toBe(HEADER_SIZE + 10);
    expect(first.error).toBeUndefined();
    const second = splitFrames(Buffer.concat([first.rest, stream.subarray(cut)]));
    expect(second.frames).toHaveLength(1);
    expect(second.frames[0].payload.equals(Buffer.alloc(100, 0xaa))).toBe(true);
    expect(second.rest.length).toBe(0);
    // A partial header waits for more bytes.
    expect(splitFrames(a.subarray(0, 5))).toMatchObject({ frames: [], rest: a.subarray(0, 5) });
  });

  it("copies payloads out of the stream buffer", () => {
    const stream = encodeFrame(MsgType.STATUS, Flags.REPLY, 1, Buffer.from("abcd"));
    const { frames } = splitFrames(stream);
    stream.fill(0);
    expect(frames[0].payload.toString()).toBe("abcd");
  });

  it("stops at a length above the maximum, after the frames before it", () => {
    const ok = encodeFrame(MsgType.START, Flags.REPLY, 3);
    const huge = Buffer.alloc(HEADER_SIZE);
    huge.writeUInt32LE(MAX_PAYLOAD + 1, 0);
    const { frames, error } = splitFrames(Buffer.concat([ok, huge]));
    expect(frames.map((f) => f.id)).toEqual([3]);
    expect(error).toBeInstanceOf(HelperError);
    expect(error?.code).toBe("PROTOCOL");
    expect(error?.message).toContain(String(MAX_PAYLOAD + 1));
    // Exactly the maximum is allowed (it waits for its payload).
    huge.writeUInt32LE(MAX_PAYLOAD, 0);
    expect(splitFrames(huge).error).toBeUndefined();
  });
});

describe("DIRTY", () => {
  it("returns the helper's little-endian u64 words as a byte bitmap, bit i of byte i >> 3 = page i", () => {
    const dirty = [0, 9, 63, 64, 69];
    const reply = dirtyReply(70, dirty);
    const d = decodeDirty(reply);
    expect(d.pages).toBe(70);
    expect(d.bitmap).toBeInstanceOf(Uint8Array);
    expect(d.bitmap.length).toBe(16); // two u64 words
    const set: number[] = [];
    for (let i = 0; i < d.pages; i++) if ((d.bitmap[i >> 3] >> (i & 7)) & 1) set.push(i);
    expect(set).toEqual(dirty);
    expect([...d.bitmap.subarray(0, 2)]).toEqual([0x01, 0x02]);
    expect(d.bitmap[7]).toBe(0x80);
    expect(d.bitmap[8]).toBe(0x21); // pages 64 and 69
  });

  it("handles an empty log and refuses replies whose size does not match the page count", () => {
    expect(decodeDirty(dirtyReply(0, []))).toEqual({ pages: 0, bitmap: new Uint8Array(0) });
    protocolError(() => decodeDirty(Buffer.alloc(3)), /of 3 bytes/);
    protocolError(() => decodeDirty(dirtyReply(70, []).subarray(0, 12)), /12 bytes for 70 pages/);
    protocolError(() => decodeDirty(Buffer.concat([dirtyReply(64, []), Buffer.alloc(8)])), /20 bytes for 64 pages/);
  });
});

describe("replies", () => {
  const status = { state: "running", reason: "", vcpus: 2, memory: 33554432, pid: 123, mode: "long", uptimeMs: 5, consoleHead: 17, protocol: 1 };

  it("decodes STATUS and refuses a malformed one", () => {
    expect(decodeStatus(json(status))).toEqual(status);
    protocolError(() => decodeStatus(json({ ...status, state: "sleeping" })), /unknown state "sleeping"/);
    protocolError(() => decodeStatus(json({ ...status, vcpus: "2" })), /no number "vcpus"/);
    protocolError(() => decodeStatus(json({ ...status, mode: "real" })), /unknown mode "real"/);
    protocolError(() => decodeStatus(Buffer.from("{nope")), /not JSON/);
    protocolError(() => decodeStatus(json([status])), /not a JSON object/);
  });

  it("decodes the sandbox a helper reports in STATUS, and refuses a malformed one", () => {
    const sandbox = { seccomp: "filter", uid: 999, gid: 995, noNewPrivs: true, mountNamespace: false, note: "no mount namespace: unshare(CLONE_NEWNS): Operation not permitted" };
    expect(decodeStatus(json({ ...status, sandbox })).sandbox).toEqual(sandbox);
    expect(decodeStatus(json(status)).sandbox).toBeUndefined(); // a helper from before the sandbox
    protocolError(() => decodeStatus(json({ ...status, sandbox: { ...sandbox, seccomp: "strict" } })), /unknown seccomp mode "strict"/);
    protocolError(() => decodeStatus(json({ ...status, sandbox: { ...sandbox, uid: -1 } })), /sandbox has no uid/);
    protocolError(() => decodeStatus(json({ ...status, sandbox: { ...sandbox, noNewPrivs: 1 } })), /no boolean noNewPrivs/);
    protocolError(() => decodeStatus(json({ ...status, sandbox: "on" })), /sandbox is not an object/);
  });

  it("decodes registers: every generated name, hex values as bigints; refuses missing names and bad values", () => {
    const body: Record<string, string | number> = { vcpu: 0 };
    HELPER_REGISTER_NAMES.forEach((n, i) => (body[n] = `0x${(i + 1).toString(16)}`));
    body.rip = "0xffffffff80001000";
    const regs = decodeRegs(json(body));
    expect(Object.keys(regs)).toEqual(HELPER_REGISTER_NAMES);
    expect(regs.rip).toBe(0xffffffff80001000n);
    expect(regs["cs.base"]).toBe(BigInt(HELPER_REGISTER_NAMES.indexOf("cs.base") + 1));
    const { ["gdt.limit"]: _dropped, ...missing } = body;
    protocolError(() => decodeRegs(json(missing)), /lacks gdt\.limit/);
    protocolError(() => decodeRegs(json({ ...body, rax: "0xzz" })), /bad value for "rax"/);
    protocolError(() => decodeRegs(json({ ...body, rax: -1 })), /bad value for "rax"/);
  });

  it("encodes SET_REGS as hex strings beside the vCPU", () => {
    expect(JSON.parse(encodeSetRegs(1, { rip: 0x100000n, "cs.dpl": 3 }).toString())).toEqual({ vcpu: 1, rip: "0x100000", "cs.dpl": "0x3" });
  });

  it("decodes STOP, CONSOLE_WRITE/KEYBOARD, DISPLAY_INFO and STATS", () => {
    expect(decodeStopResult(json({ forced: true, exitStatus: 3 }))).toEqual({ forced: true, exitStatus: 3 });
    protocolError(() => decodeStopResult(json({ forced: 1, exitStatus: 3 })), /boolean "forced"/);
    expect(decodeAccepted(json({ accepted: 13 }))).toBe(13);
    protocolError(() => decodeAccepted(Buffer.alloc(0)), /not JSON/);
    const info = { width: 640, height: 480, stride: 2560, format: "bgrx", path: "/run/fb", gpa: 0xd0000000, pages: 300, size: 1228800 };
    expect(decodeDisplayInfo(json(info))).toEqual(info);
    protocolError(() => decodeDisplayInfo(json({ ...info, path: 7 })), /no string "path"/);
    const stats = { binaryStats: true, vm: {}, vcpus: [{ id: 0, exits: { total: 1 }, kvm: {} }], devices: { serial: { txBytes: 4 } } };
    expect(decodeStats(json(stats))).toEqual(stats);
    protocolError(() => decodeStats(json({ ...stats, vcpus: {} })), /array "vcpus"/);
    protocolError(() => decodeStats(json({ ...stats, vcpus: [{ id: 0, kvm: {} }] })), /object "exits"/);
  });

  it("decodes error replies; an unknown or unreadable one is PROTOCOL", () => {
    const e = decodeErrorReply(json({ code: 4, name: "WRONG_STATE", message: "VM is running" }));
    expect([e.code, e.message, e.remoteCode]).toEqual(["WRONG_STATE", "VM is running", 4]);
    const unknown = decodeErrorReply(json({ code: 77, name: "SOMETHING_NEW", message: "m" }));
    expect([unknown.code, unknown.message, unknown.remoteCode]).toEqual(["PROTOCOL", "unknown error SOMETHING_NEW: m", 77]);
    expect(decodeErrorReply(json({ name: "toString" })).code).toBe("PROTOCOL");
    expect(decodeErrorReply(Buffer.from("garbage")).message).toBe("error reply");
  });
});

describe("requests", () => {
  it("lays out READ_MEM, WRITE_MEM, CONSOLE_READ, GUEST_COMMAND and POINTER", () => {
    const read = encodeReadMemory(0x1_0000_8000n, 4096);
    expect(read.length).toBe(16);
    expect(read.readBigUInt64LE(0)).toBe(0x1_0000_8000n);
    expect(read.readUInt32LE(8)).toBe(4096);
    expect(read.readUInt32LE(12)).toBe(0);
    const write = encodeWriteMemory(0x8000, Uint8Array.from([1, 2, 3]));
    expect(write.length).toBe(19);
    expect(write.readUInt32LE(8)).toBe(3);
    expect([...write.subarray(16)]).toEqual([1, 2, 3]);
    expect(encodeConsoleRead(65536).readUInt32LE(0)).toBe(65536);
    expect(encodeGuestCommand(0x08, 100000).readUInt32LE(0)).toBe((100000 << 8) | 0x08);
    expect(encodeGuestCommand(0xff, 0x1ffffff).readUInt32LE(0)).toBe(0xffffffff); // arg keeps 24 bits
    expect(JSON.parse(encodePointer(-5, 10.7, 5).toString())).toEqual({ x: 0, y: 10, buttons: 5 });
  });
});

describe("events", () => {
  const event = (type: number, payload: Buffer, flags: number = Flags.EVENT, id = 9) => decodeEvent({ type, flags, id, payload });

  it("decodes each event type", () => {
    expect(event(EventType.STATE, json({ state: "stopped", reason: "guest power-off" }))).toEqual({ kind: "state", seq: 9, state: "stopped", reason: "guest power-off" });
    expect(event(EventType.CONSOLE, Buffer.from("out"), Flags.EVENT | Flags.TRUNCATED)).toEqual({ kind: "console", seq: 9, data: Buffer.from("out"), truncated: true });
    expect(event(EventType.RESET, json({ source: "i8042" }))).toEqual({ kind: "reset", seq: 9, source: "i8042" });
    expect(event(EventType.REPLACED, json({ reason: "another client with the VM's secret took control" }))).toEqual({ kind: "replaced", seq: 9, reason: "another client with the VM's secret took control" });
    expect(event(EventType.POWEROFF, json({ source: "guest" }))).toEqual({ kind: "poweroff", seq: 9, source: "guest" });
    expect(event(EventType.TRIPLE_FAULT, json({ vcpu: 1, rip: "0x100abc", exitReason: 8, message: "triple fault" }))).toEqual({
      kind: "tripleFault",
      seq: 9,
      vcpu: 1,
      rip: 0x100abcn,
      exitReason: 8,
      message: "triple fault",
    });
    expect(event(EventType.INTERNAL_ERROR, json({ vcpu: 0, rip: "0x10", exitReason: 17 }))).toMatchObject({ kind: "internalError", rip: 0x10n, exitReason: 17, message: "" });
    expect(event(EventType.DEBUG, json({ port: 1280, size: 4, value: 42 }))).toEqual({ kind: "debug", seq: 9, port: 1280, size: 4, value: 42 });
  });

  it("keeps unknown types, unknown states and unreadable payloads as events, never throws", () => {
    expect(event(0x1ff, Buffer.from("x"))).toEqual({ kind: "unknown", seq: 9, type: 0x1ff, payload: Buffer.from("x") });
    expect(event(EventType.STATE, json({ state: "sleeping" }))).toMatchObject({ kind: "unknown", type: EventType.STATE });
    expect(event(EventType.RESET, Buffer.from("{bad"))).toEqual({ kind: "reset", seq: 9, source: "" });
    expect(event(EventType.TRIPLE_FAULT, json({ rip: "nonsense" }))).toMatchObject({ kind: "tripleFault", rip: 0n });
  });
});
