// The qumra-vmm control protocol (native/PROTOCOL.md) as pure functions: framing (a 12-byte
// little-endian header {u32 length, u16 type, u16 flags, u32 id} + payload) and the encoders and
// decoders of every message's payload. No sockets here (helper-client.ts is the transport); the
// constants come from the C headers (agent/src/gen/helper-abi.ts, generated at build time).
import {
  CONTROL_REGS,
  DTABLES,
  DTABLE_FIELDS,
  ErrorCode,
  EventType,
  Flags,
  GP_REGS,
  GuestAbi,
  Proto,
  SEGMENTS,
  SEGMENT_FIELDS,
} from "../gen/helper-abi.js";
import { HelperError, type HelperErrorCode } from "./helper-errors.js";
import { sandboxFromStatus, type VmSandbox } from "./sandbox-status.js";

export { ErrorCode, EventType, Flags, GuestCommand, MsgType } from "../gen/helper-abi.js";

export const PROTOCOL_VERSION = Proto.VERSION;
export const HEADER_SIZE = Proto.HEADER_SIZE;
export const MAX_PAYLOAD = Proto.MAX_PAYLOAD;
/** Bytes per READ_MEM / WRITE_MEM. */
export const MAX_MEMORY_IO = Proto.MAX_MEM_IO;
/** Guest-physical address of the demo guest's memory cell (QG_CELL_ADDR). */
export const DEMO_CELL_ADDR = GuestAbi.CELL_ADDR;

/** Every register name GET_REGS answers with, in the helper's order ("rax", "cr0", "cs.base", "gdt.limit", ...). */
export const HELPER_REGISTER_NAMES: readonly string[] = [
  ...GP_REGS,
  ...CONTROL_REGS,
  ...SEGMENTS.flatMap((s) => SEGMENT_FIELDS.map((f) => `${s}.${f.name}`)),
  ...DTABLES.flatMap((t) => DTABLE_FIELDS.map((f) => `${t}.${f.name}`)),
];

/** The VM's state as the helper spells it (the agent's VmState is upper case, with DELETED). */
export const HELPER_STATES = ["created", "running", "paused", "stopped", "crashed"] as const;
export type HelperState = (typeof HELPER_STATES)[number];

export interface HelperStatus {
  state: HelperState;
  reason: string;
  vcpus: number;
  memory: number;
  pid: number;
  mode: "long" | "protected" | "pvh" | "bzimage";
  uptimeMs: number;
  consoleHead: number;
  protocol: number;
  /** What confines the helper; undefined from helpers that report none. */
  sandbox?: VmSandbox;
}

export type HelperEvent =
  | { kind: "state"; seq: number; state: HelperState; reason: string }
  | { kind: "console"; seq: number; data: Buffer; truncated: boolean }
  | { kind: "reset"; seq: number; source: string }
  | { kind: "poweroff"; seq: number; source: string }
  | { kind: "tripleFault"; seq: number; vcpu: number; rip: bigint; exitReason: number; message: string }
  | { kind: "internalError"; seq: number; vcpu: number; rip: bigint; exitReason: number; message: string }
  | { kind: "debug"; seq: number; port: number; size: number; value: number }
  /** Another client with the VM's secret took control; the helper closes this connection next. */
  | { kind: "replaced"; seq: number; reason: string }
  | { kind: "unknown"; seq: number; type: number; payload: Buffer };

/** The framebuffer (DISPLAY_INFO): rows of `stride` bytes in the file at `path`. */
export interface DisplayInfo {
  width: number;
  height: number;
  stride: number;
  /** "bgrx" (bytes B, G, R, X). */
  format: string;
  /** Absolute path of the framebuffer file (read it with positional reads). */
  path: string;
  /** Guest-physical address of the framebuffer. */
  gpa: number;
  /** 4 KiB pages of the framebuffer (stride × height rounded up). */
  pages: number;
  /** Bytes of the file (pages × 4096). */
  size: number;
}

/** Framebuffer pages written since the previous DIRTY: bit i of byte i >> 3 (LSB first) = page i. */
/** MOUSE's reply: packets queued for the guest; 0 with `reporting` = no room now, try again. */
export interface MouseReply {
  packets: number;
  /** Whether the guest's mouse reports motion at all (stream mode, enabled); if not, motion is dropped. */
  reporting: boolean;
}

/** MOUSE's bounds (native/proto.h), checked by the helper too. */
export const MOUSE_MAX_DELTA = Proto.MOUSE_MAX_DELTA;
export const MOUSE_MAX_WHEEL = Proto.MOUSE_MAX_WHEEL;
export const MOUSE_BUTTONS = Proto.MOUSE_BUTTONS;

export interface DirtyPages {
  pages: number;
  bitmap: Uint8Array;
}

/** Register name → value ("rax", "rip", "cr3", "efer", "cs.selector", "gdt.base", ...). */
export type Registers = Record<string, bigint>;

export interface StopResult {
  forced: boolean;
  exitStatus: number;
}

export interface HelperStats {
  binaryStats: boolean;
  vm: Record<string, number>;
  vcpus: {
    id: number;
    exits: { total: number; io: number; mmio: number; hlt: number; intr: number; shutdown: number; other: number };
    kvm: Record<string, number>;
  }[];
  devices: Record<string, Record<string, number>>;
}

// ---- framing ----

export interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  id: number;
}

export interface Frame {
  type: number;
  flags: number;
  /** Request id (echoed by its reply) or, on events, the event sequence number. */
  id: number;
  payload: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** Header and payload as one buffer (one socket write). */
export function encodeFrame(type: number, flags: number, id: number, payload: Uint8Array = EMPTY): Buffer {
  const frame = Buffer.alloc(HEADER_SIZE + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt16LE(type, 4);
  frame.writeUInt16LE(flags, 6);
  frame.writeUInt32LE(id >>> 0, 8);
  frame.set(payload, HEADER_SIZE);
  return frame;
}

/** The header at the start of `bytes` (which holds at least HEADER_SIZE bytes). */
export function decodeHeader(bytes: Buffer): FrameHeader {
  if (bytes.length < HEADER_SIZE) throw new HelperError("PROTOCOL", `a header is ${HEADER_SIZE} bytes, got ${bytes.length}`);
  return { length: bytes.readUInt32LE(0), type: bytes.readUInt16LE(4), flags: bytes.readUInt16LE(6), id: bytes.readUInt32LE(8) };
}

/**
 * The complete frames at the front of `bytes` and the incomplete rest. Payloads are copies, so a
 * kept payload does not pin the stream buffer. A length above MAX_PAYLOAD ends the split with
 * `error` (after the frames before it): the stream cannot be trusted past it.
 */
export function splitFrames(bytes: Buffer): { frames: Frame[]; rest: Buffer; error?: HelperError } {
  const frames: Frame[] = [];
  let at = 0;
  while (bytes.length - at >= HEADER_SIZE) {
    const h = decodeHeader(bytes.subarray(at));
    if (h.length > MAX_PAYLOAD) return { frames, rest: bytes.subarray(at), error: new HelperError("PROTOCOL", `helper sent a ${h.length}-byte message`) };
    if (bytes.length - at < HEADER_SIZE + h.length) break;
    const payload = Buffer.from(bytes.subarray(at + HEADER_SIZE, at + HEADER_SIZE + h.length));
    frames.push({ type: h.type, flags: h.flags, id: h.id, payload });
    at += HEADER_SIZE + h.length;
  }
  return { frames, rest: bytes.subarray(at) };
}

// ---- payload checks ----

const malformed = (what: string, why: string) => new HelperError("PROTOCOL", `${what} ${why}`);

function jsonObject(payload: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString("utf8"));
  } catch {
    throw malformed(what, "is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw malformed(what, "is not a JSON object");
  return value as Record<string, unknown>;
}

function num(o: Record<string, unknown>, key: string, what: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isFinite(v)) throw malformed(what, `has no number "${key}"`);
  return v;
}

function str(o: Record<string, unknown>, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== "string") throw malformed(what, `has no string "${key}"`);
  return v;
}

function obj(o: Record<string, unknown>, key: string, what: string): Record<string, unknown> {
  const v = o[key];
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw malformed(what, `has no object "${key}"`);
  return v as Record<string, unknown>;
}

const json = (body: unknown): Buffer => Buffer.from(JSON.stringify(body));

function u32(value: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32LE(value >>> 0, 0);
  return p;
}

/** A register value as the helper writes it ("0x1f"; plain numbers are accepted too). */
function registerValue(v: unknown, name: string): bigint {
  if ((typeof v === "string" && /^(0x[0-9a-f]+|\d+)$/i.test(v)) || (typeof v === "number" && Number.isSafeInteger(v) && v >= 0)) return BigInt(v);
  throw malformed("GET_REGS/SET_REGS reply", `has a bad value for "${name}"`);
}

const isHelperState = (s: unknown): s is HelperState => (HELPER_STATES as readonly unknown[]).includes(s);

// ---- requests and replies ----

/** HELLO with the VM's control secret (control-secret.ts); without the right one the helper closes the connection. */
export const encodeHello = (secret: string): Buffer => json({ version: PROTOCOL_VERSION, secret });

export function decodeStatus(payload: Uint8Array): HelperStatus {
  const what = "STATUS reply";
  const o = jsonObject(payload, what);
  if (!isHelperState(o.state)) throw malformed(what, `has an unknown state ${JSON.stringify(o.state)}`);
  const mode = str(o, "mode", what);
  if (mode !== "long" && mode !== "protected" && mode !== "pvh" && mode !== "bzimage") throw malformed(what, `has an unknown mode "${mode}"`);
  return {
    state: o.state,
    reason: str(o, "reason", what),
    vcpus: num(o, "vcpus", what),
    memory: num(o, "memory", what),
    pid: num(o, "pid", what),
    mode,
    uptimeMs: num(o, "uptimeMs", what),
    consoleHead: num(o, "consoleHead", what),
    protocol: num(o, "protocol", what),
    sandbox: sandboxFromStatus(o.sandbox),
  };
}

export const encodeStop = (timeoutMs: number): Buffer => json({ timeoutMs });

export function decodeStopResult(payload: Uint8Array): StopResult {
  const what = "STOP reply";
  const o = jsonObject(payload, what);
  if (typeof o.forced !== "boolean") throw malformed(what, `has no boolean "forced"`);
  return { forced: o.forced, exitStatus: num(o, "exitStatus", what) };
}

export const encodeGetRegs = (vcpu: number): Buffer => json({ vcpu });

/** SET_REGS: only the named registers change; values go as hex strings. */
export function encodeSetRegs(vcpu: number, regs: Record<string, bigint | number>): Buffer {
  const body: Record<string, string | number> = { vcpu };
  for (const [k, v] of Object.entries(regs)) body[k] = `0x${BigInt(v).toString(16)}`;
  return json(body);
}

/** The flat register object of GET_REGS / SET_REGS; every register of the generated list must be there. */
export function decodeRegs(payload: Uint8Array): Registers {
  const o = jsonObject(payload, "GET_REGS/SET_REGS reply");
  const out: Registers = {};
  for (const [k, v] of Object.entries(o)) if (k !== "vcpu") out[k] = registerValue(v, k);
  const missing = HELPER_REGISTER_NAMES.filter((n) => !(n in out));
  if (missing.length) throw malformed("GET_REGS/SET_REGS reply", `lacks ${missing.join(", ")}`);
  return out;
}

function memoryHeader(gpa: bigint | number, length: number): Buffer {
  const p = Buffer.alloc(16);
  p.writeBigUInt64LE(BigInt(gpa), 0);
  p.writeUInt32LE(length >>> 0, 8);
  return p;
}

/** READ_MEM: u64 gpa, u32 length, u32 flags (0). */
export const encodeReadMemory = (gpa: bigint | number, length: number): Buffer => memoryHeader(gpa, length);

/** WRITE_MEM: the READ_MEM header, then exactly `length` data bytes. */
export const encodeWriteMemory = (gpa: bigint | number, data: Uint8Array): Buffer => Buffer.concat([memoryHeader(gpa, data.length), data]);

export function decodeStats(payload: Uint8Array): HelperStats {
  const what = "STATS reply";
  const o = jsonObject(payload, what);
  if (typeof o.binaryStats !== "boolean") throw malformed(what, `has no boolean "binaryStats"`);
  if (!Array.isArray(o.vcpus)) throw malformed(what, `has no array "vcpus"`);
  for (const v of o.vcpus as unknown[]) {
    if (typeof v !== "object" || v === null) throw malformed(what, "has a vCPU that is not an object");
    const vcpu = v as Record<string, unknown>;
    num(vcpu, "id", what);
    obj(vcpu, "exits", what);
    obj(vcpu, "kvm", what);
  }
  obj(o, "vm", what);
  obj(o, "devices", what);
  return o as unknown as HelperStats;
}

/** CONSOLE_WRITE and KEYBOARD: how many bytes the device took. */
export function decodeAccepted(payload: Uint8Array): number {
  return num(jsonObject(payload, "CONSOLE_WRITE/KEYBOARD reply"), "accepted", "CONSOLE_WRITE/KEYBOARD reply");
}

/** CONSOLE_READ: the last maxBytes of console output. */
export const encodeConsoleRead = (maxBytes: number): Buffer => u32(maxBytes);

/** GUEST_COMMAND: the command word (arg << 8) | op. */
export const encodeGuestCommand = (op: number, arg = 0): Buffer => u32(((arg & 0xffffff) << 8) | (op & 0xff));

export function decodeDisplayInfo(payload: Uint8Array): DisplayInfo {
  const what = "DISPLAY_INFO reply";
  const o = jsonObject(payload, what);
  return {
    width: num(o, "width", what),
    height: num(o, "height", what),
    stride: num(o, "stride", what),
    format: str(o, "format", what),
    path: str(o, "path", what),
    gpa: num(o, "gpa", what),
    pages: num(o, "pages", what),
    size: num(o, "size", what),
  };
}

/** DIRTY: u32 pages, then ceil(pages / 64) little-endian u64 words, which are already the byte bitmap (a view of the reply). */
export function decodeDirty(payload: Uint8Array): DirtyPages {
  if (payload.length < 4) throw malformed("DIRTY reply", `of ${payload.length} bytes`);
  const pages = Buffer.from(payload.buffer, payload.byteOffset, 4).readUInt32LE(0);
  const bytes = Math.ceil(pages / 64) * 8;
  if (payload.length !== 4 + bytes) throw malformed("DIRTY reply", `of ${payload.length} bytes for ${pages} pages`);
  return { pages, bitmap: new Uint8Array(payload.buffer, payload.byteOffset + 4, bytes) };
}

/** POINTER: position (clamped to the screen by the helper) and buttons (bit 0 left, 1 right, 2 middle). */
export const encodePointer = (x: number, y: number, buttons: number): Buffer => json({ x: Math.max(0, Math.trunc(x)), y: Math.max(0, Math.trunc(y)), buttons: buttons >>> 0 });

/**
 * MOUSE: relative motion for the PS/2 mouse, 16 bytes: i32 dx, i32 dy (screen coordinates, dy positive
 * down), i32 wheel (positive towards the user), u32 buttons (bit 0 left, 1 right, 2 middle). The helper
 * refuses values beyond MOUSE_MAX_DELTA / MOUSE_MAX_WHEEL / MOUSE_BUTTONS; this refuses what the wire cannot carry.
 */
export function encodeMouse(dx: number, dy: number, wheel: number, buttons: number): Buffer {
  const p = Buffer.alloc(16);
  const fields: [string, number][] = [["dx", dx], ["dy", dy], ["wheel", wheel]];
  fields.forEach(([name, v], i) => {
    if (!Number.isInteger(v) || v < -0x8000_0000 || v > 0x7fff_ffff) throw new HelperError("INVALID_ARGUMENT", `MOUSE ${name} ${v} is not a 32-bit integer`);
    p.writeInt32LE(v, i * 4);
  });
  if (!Number.isInteger(buttons) || buttons < 0 || buttons > 0xffff_ffff) throw new HelperError("INVALID_ARGUMENT", `MOUSE buttons ${buttons} is not a 32-bit unsigned integer`);
  p.writeUInt32LE(buttons, 12);
  return p;
}

export function decodeMouseReply(payload: Uint8Array): MouseReply {
  const what = "MOUSE reply";
  const o = jsonObject(payload, what);
  if (typeof o.reporting !== "boolean") throw malformed(what, `has no boolean "reporting"`);
  return { packets: num(o, "packets", what), reporting: o.reporting };
}

/** An error reply {"code","name","message"}; a name the protocol does not define is reported as PROTOCOL. */
export function decodeErrorReply(payload: Uint8Array): HelperError {
  let body: Record<string, unknown> = {};
  try {
    body = jsonObject(payload, "error reply");
  } catch {
    /* an unreadable error is still an error */
  }
  const code = typeof body.code === "number" ? body.code : undefined;
  const message = typeof body.message === "string" ? body.message : "error reply";
  if (typeof body.name === "string" && Object.hasOwn(ErrorCode, body.name)) return new HelperError(body.name as HelperErrorCode, message, code);
  return new HelperError("PROTOCOL", `${typeof body.name === "string" ? `unknown error ${body.name}: ` : ""}${message}`, code);
}

// ---- events ----

/** An event frame; payloads the client cannot read give empty fields, as events cannot be refused. */
export function decodeEvent(frame: Frame): HelperEvent {
  const { type, flags, id: seq, payload } = frame;
  if (type === EventType.CONSOLE) return { kind: "console", seq, data: payload, truncated: (flags & Flags.TRUNCATED) !== 0 };
  let j: Record<string, unknown> = {};
  try {
    j = jsonObject(payload, "event");
  } catch {
    /* fields stay empty */
  }
  switch (type) {
    case EventType.STATE:
      if (!isHelperState(j.state)) return { kind: "unknown", seq, type, payload };
      return { kind: "state", seq, state: j.state, reason: String(j.reason ?? "") };
    case EventType.RESET:
      return { kind: "reset", seq, source: String(j.source ?? "") };
    case EventType.POWEROFF:
      return { kind: "poweroff", seq, source: String(j.source ?? "") };
    case EventType.TRIPLE_FAULT:
    case EventType.INTERNAL_ERROR: {
      let rip = 0n;
      try {
        rip = registerValue(j.rip, "rip");
      } catch {
        /* no rip */
      }
      return {
        kind: type === EventType.TRIPLE_FAULT ? "tripleFault" : "internalError",
        seq,
        vcpu: Number(j.vcpu ?? 0),
        rip,
        exitReason: Number(j.exitReason ?? 0),
        message: String(j.message ?? ""),
      };
    }
    case EventType.DEBUG:
      return { kind: "debug", seq, port: Number(j.port), size: Number(j.size), value: Number(j.value) };
    case EventType.REPLACED:
      return { kind: "replaced", seq, reason: String(j.reason ?? "") };
    default:
      return { kind: "unknown", seq, type, payload };
  }
}

// ---- VM state (SAVE_STATE, LOAD_STATE, RAM_MAP, RAM_CHECKSUM; PROTOCOL.md "VM state") ----

/** State bytes per SAVE_STATE / LOAD_STATE message at most. */
export const STATE_CHUNK = Proto.STATE_CHUNK;
/** The state blob's format version this build's helper writes and reads. */
export const STATE_FORMAT = Proto.STATE_FORMAT;
/** A blob's size at most (LOAD_STATE refuses larger). */
export const STATE_MAX = Proto.STATE_MAX;

/** One chunk of a SAVE_STATE reply: the blob's total size, where the bytes start, the bytes (a view of the reply). */
export interface StateChunk {
  total: number;
  offset: number;
  bytes: Buffer;
}

/** SAVE_STATE: u64 offset (0 takes the state now), u32 max bytes. */
export function encodeSaveState(offset: number, max: number = STATE_CHUNK): Buffer {
  const p = Buffer.alloc(12);
  p.writeBigUInt64LE(BigInt(offset), 0);
  p.writeUInt32LE(max >>> 0, 8);
  return p;
}

export function decodeStateChunk(payload: Buffer): StateChunk {
  if (payload.length < Proto.STATE_HEADER) throw malformed("SAVE_STATE reply", `of ${payload.length} bytes`);
  const total = Number(payload.readBigUInt64LE(0));
  const offset = Number(payload.readBigUInt64LE(8));
  const bytes = payload.subarray(Proto.STATE_HEADER);
  if (offset + bytes.length > total) throw malformed("SAVE_STATE reply", `has bytes [${offset}, +${bytes.length}) past its total ${total}`);
  return { total, offset, bytes };
}

/** LOAD_STATE: u64 total, u64 offset, then the chunk's bytes. */
export function encodeLoadState(total: number, offset: number, bytes: Uint8Array): Buffer {
  const p = Buffer.alloc(Proto.STATE_HEADER + bytes.length);
  p.writeBigUInt64LE(BigInt(total), 0);
  p.writeBigUInt64LE(BigInt(offset), 8);
  p.set(bytes, Proto.STATE_HEADER);
  return p;
}

export interface LoadStateReply {
  received: number;
  total: number;
  /** True after the last chunk: the state was checked and applied, the VM is paused at the saved point. */
  loaded: boolean;
}

export function decodeLoadStateReply(payload: Uint8Array): LoadStateReply {
  const what = "LOAD_STATE reply";
  const o = jsonObject(payload, what);
  if (typeof o.loaded !== "boolean") throw malformed(what, `has no boolean "loaded"`);
  return { received: num(o, "received", what), total: num(o, "total", what), loaded: o.loaded };
}

/** A guest-physical range of RAM that holds data. */
export interface RamRange {
  gpa: number;
  length: number;
}

/** RAM_MAP: empty, or the u64 gpa to start from. */
export function encodeRamMap(from = 0): Buffer {
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(BigInt(from), 0);
  return p;
}

export function decodeRamMap(payload: Buffer): { ranges: RamRange[]; more: boolean } {
  if (payload.length < 8) throw malformed("RAM_MAP reply", `of ${payload.length} bytes`);
  const count = payload.readUInt32LE(0);
  if (payload.length !== 8 + count * 16) throw malformed("RAM_MAP reply", `of ${payload.length} bytes for ${count} ranges`);
  const ranges: RamRange[] = [];
  for (let i = 0; i < count; i++) ranges.push({ gpa: Number(payload.readBigUInt64LE(8 + 16 * i)), length: Number(payload.readBigUInt64LE(16 + 16 * i)) });
  return { ranges, more: payload.readUInt32LE(4) !== 0 };
}

export interface RamChecksum {
  /** "crc32": IEEE, as zlib's crc32, over all RAM in RAM-file order (holes as zeros). */
  algorithm: string;
  crc32: number;
  bytes: number;
  dataBytes: number;
}

export function decodeRamChecksum(payload: Uint8Array): RamChecksum {
  const what = "RAM_CHECKSUM reply";
  const o = jsonObject(payload, what);
  const crc = str(o, "crc32", what);
  if (!/^0x[0-9a-f]{8}$/.test(crc)) throw malformed(what, `has a bad crc32 "${crc}"`);
  return { algorithm: str(o, "algorithm", what), crc32: Number.parseInt(crc.slice(2), 16), bytes: num(o, "bytes", what), dataBytes: num(o, "dataBytes", what) };
}

// ---- live migration (RAM_DIRTY_LOG, RAM_DIRTY, READ_PAGES, WRITE_PAGES; PROTOCOL.md "Live migration") ----

/** The page RAM_DIRTY, READ_PAGES and WRITE_PAGES count in. */
export const PAGE_SIZE = Proto.PAGE_SIZE;
/** Pages per READ_PAGES / WRITE_PAGES at most (1 MiB), over all its runs. */
export const PAGES_MAX = Proto.PAGES_MAX;

export interface DirtyLogReply {
  /** Whether KVM logs guest writes to RAM now. */
  enabled: boolean;
  /** Guest RAM pages logged (every RAM slot; the framebuffer is not RAM). */
  pages: number;
}

/** RAM_DIRTY_LOG: u32 1 (on) or 0 (off). */
export const encodeDirtyLog = (on: boolean): Buffer => u32(on ? 1 : 0);

export function decodeDirtyLogReply(payload: Uint8Array): DirtyLogReply {
  const what = "RAM_DIRTY_LOG reply";
  const o = jsonObject(payload, what);
  if (typeof o.enabled !== "boolean") throw malformed(what, `has no boolean "enabled"`);
  return { enabled: o.enabled, pages: num(o, "pages", what) };
}

/**
 * One RAM slot's pages written since the previous RAM_DIRTY (or since logging was turned on): bit i of
 * the bitmap (bit i & 7 of byte i >> 3) set = page gpa + i × PAGE_SIZE. `bitmap` is a view of the reply.
 */
export interface RamDirtySlot {
  gpa: number;
  pages: number;
  bitmap: Uint8Array;
}

/** RAM_DIRTY: u32 slots, then per slot u64 gpa, u64 pages and ceil(pages / 64) little-endian u64 words. */
export function decodeRamDirty(payload: Buffer): RamDirtySlot[] {
  const what = "RAM_DIRTY reply";
  if (payload.length < 4) throw malformed(what, `of ${payload.length} bytes`);
  const count = payload.readUInt32LE(0);
  const slots: RamDirtySlot[] = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (payload.length < at + 16) throw malformed(what, `of ${payload.length} bytes ends inside slot ${i}'s header`);
    const gpa = Number(payload.readBigUInt64LE(at));
    const pages = Number(payload.readBigUInt64LE(at + 8));
    const bytes = Math.ceil(pages / 64) * 8;
    if (gpa % PAGE_SIZE !== 0 || payload.length < at + 16 + bytes) throw malformed(what, `has a bad slot ${i} (gpa ${gpa}, ${pages} pages) in ${payload.length} bytes`);
    slots.push({ gpa, pages, bitmap: new Uint8Array(payload.buffer, payload.byteOffset + at + 16, bytes) });
    at += 16 + bytes;
  }
  if (at !== payload.length) throw malformed(what, `of ${payload.length} bytes for ${count} slots (${at} bytes)`);
  return slots;
}

/** Whole pages at a page-aligned guest-physical address. */
export interface PageRun {
  gpa: number;
  pages: number;
}

/** READ_PAGES: u32 n, then n × (u64 gpa, u32 pages). The helper checks alignment, bounds and totals; this refuses only what the wire cannot carry. */
export function encodeReadPages(runs: readonly PageRun[]): Buffer {
  const p = Buffer.alloc(4 + runs.length * Proto.PAGE_RUN_SIZE);
  p.writeUInt32LE(runs.length, 0);
  runs.forEach((r, i) => {
    if (!Number.isSafeInteger(r.gpa) || r.gpa < 0) throw new HelperError("INVALID_ARGUMENT", `page run ${i}: gpa ${r.gpa} is not an unsigned integer`);
    if (!Number.isInteger(r.pages) || r.pages < 0 || r.pages > 0xffff_ffff) throw new HelperError("INVALID_ARGUMENT", `page run ${i}: ${r.pages} pages is not a 32-bit unsigned integer`);
    p.writeBigUInt64LE(BigInt(r.gpa), 4 + i * Proto.PAGE_RUN_SIZE);
    p.writeUInt32LE(r.pages, 12 + i * Proto.PAGE_RUN_SIZE);
  });
  return p;
}

/** WRITE_PAGES: the READ_PAGES header, then exactly the runs' bytes in order. */
export const encodeWritePages = (runs: readonly PageRun[], data: Uint8Array): Buffer => Buffer.concat([encodeReadPages(runs), data]);

/** Bytes the runs cover (READ_PAGES' reply length, WRITE_PAGES' data length). */
export const runsBytes = (runs: readonly PageRun[]): number => runs.reduce((n, r) => n + r.pages * PAGE_SIZE, 0);

/** STATS devices.migration. */
export interface MigrationStats {
  dirtyLog: boolean;
  /** RAM_DIRTY calls and the dirty pages they reported in all. */
  dirtyCalls: number;
  dirtyPages: number;
  pagesRead: number;
  pagesWritten: number;
}

export function decodeMigrationStats(stats: HelperStats): MigrationStats {
  const what = "STATS devices.migration";
  const o = (stats.devices as Record<string, unknown>).migration;
  if (typeof o !== "object" || o === null) throw malformed("STATS reply", `has no object "devices.migration"`);
  const m = o as Record<string, unknown>;
  if (typeof m.dirtyLog !== "boolean") throw malformed(what, `has no boolean "dirtyLog"`);
  return {
    dirtyLog: m.dirtyLog,
    dirtyCalls: num(m, "dirtyCalls", what),
    dirtyPages: num(m, "dirtyPages", what),
    pagesRead: num(m, "pagesRead", what),
    pagesWritten: num(m, "pagesWritten", what),
  };
}
