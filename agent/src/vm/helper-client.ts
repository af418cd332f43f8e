// Client of the qumra-vmm control protocol (native/PROTOCOL.md): one unix socket per VM,
// 12-byte little-endian header {u32 length, u16 type, u16 flags, u32 id} + payload.
// Requests get exactly one reply (matched by id); events arrive at any time and are emitted.
import { EventEmitter } from "node:events";
import net from "node:net";

export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 12;
export const MAX_PAYLOAD = (1 << 20) + 64;
export const MAX_MEMORY_IO = 1 << 20;

export const MsgType = {
  HELLO: 1,
  STATUS: 2,
  START: 3,
  PAUSE: 4,
  RESUME: 5,
  STOP: 6,
  GET_REGS: 7,
  SET_REGS: 8,
  READ_MEM: 9,
  WRITE_MEM: 10,
  STATS: 11,
  CONSOLE_WRITE: 12,
  CONSOLE_READ: 13,
  KEYBOARD: 14,
  GUEST_COMMAND: 15,
  DISPLAY_INFO: 16,
  DIRTY: 17,
  POINTER: 18,
} as const;

export const EventType = {
  STATE: 0x100,
  CONSOLE: 0x101,
  RESET: 0x102,
  POWEROFF: 0x103,
  TRIPLE_FAULT: 0x104,
  INTERNAL_ERROR: 0x105,
  DEBUG: 0x106,
} as const;

export const Flags = { REPLY: 1, ERROR: 2, EVENT: 4, TRUNCATED: 8 } as const;

/** Demo guest commands (native/guest/guest-abi.h); a command word is (arg << 8) | op. */
export const GuestCommand = {
  HEARTBEAT: 0x01,
  HALT: 0x02,
  TRIPLE_FAULT: 0x03,
  SPIN: 0x04,
  ECHO: 0x05,
  PEEK: 0x06,
  POWEROFF: 0x07,
  EXITS: 0x08,
  PING: 0x09,
  /** Known small change: 200x100 rectangle at (64,64), first pixel = counter; prints `drawn N`. */
  DRAW: 0x0a,
  /** Full-screen change; prints `full N`. */
  FULL: 0x0b,
  /** Redraw the desktop scene; prints `scene`. */
  SCENE: 0x0c,
} as const;

/** Guest-physical address of the demo guest's memory cell (QG_CELL_ADDR). */
export const DEMO_CELL_ADDR = 0x8000;

/** Error codes: the helper's error names, plus the client's own conditions. */
export type HelperErrorCode =
  | "BAD_MESSAGE"
  | "UNKNOWN_TYPE"
  | "INVALID_ARGUMENT"
  | "WRONG_STATE"
  | "OUT_OF_RANGE"
  | "TOO_LARGE"
  | "NO_HELLO"
  | "VERSION"
  | "INTERNAL"
  | "TIMEOUT"
  | "CONNECTION_CLOSED"
  | "CONNECT_FAILED"
  | "PROTOCOL"
  | "SPAWN_FAILED"
  | "NOT_FOUND";

export class HelperError extends Error {
  override readonly name = "HelperError";
  constructor(
    readonly code: HelperErrorCode,
    message: string,
    /** The numeric code from the helper's error reply, when there was one. */
    readonly remoteCode?: number,
  ) {
    super(message);
  }
}

export type VmState = "created" | "running" | "paused" | "stopped" | "crashed";

export interface HelperStatus {
  state: VmState;
  reason: string;
  vcpus: number;
  memory: number;
  pid: number;
  mode: "long" | "protected";
  uptimeMs: number;
  consoleHead: number;
  protocol: number;
}

export type HelperEvent =
  | { kind: "state"; seq: number; state: VmState; reason: string }
  | { kind: "console"; seq: number; data: Buffer; truncated: boolean }
  | { kind: "reset"; seq: number; source: string }
  | { kind: "poweroff"; seq: number; source: string }
  | { kind: "tripleFault"; seq: number; vcpu: number; rip: bigint; exitReason: number; message: string }
  | { kind: "internalError"; seq: number; vcpu: number; rip: bigint; exitReason: number; message: string }
  | { kind: "debug"; seq: number; port: number; size: number; value: number }
  | { kind: "unknown"; seq: number; type: number; payload: Buffer };

/** The framebuffer (DISPLAY_INFO): BGRX rows of `stride` bytes in the file at `path`. */
export interface DisplayInfo {
  width: number;
  height: number;
  stride: number;
  format: "bgrx";
  /** Absolute path of the framebuffer file (read it with positional reads). */
  path: string;
  /** Guest-physical address of the framebuffer. */
  gpa: number;
  /** 4 KiB pages of the framebuffer (stride × height rounded up). */
  pages: number;
  /** Bytes of the file (pages × 4096). */
  size: number;
}

/** Framebuffer pages written since the previous DIRTY: bit i of the bitmap (word i >> 6, bit i & 63) = page i. */
export interface DirtyPages {
  pages: number;
  bitmap: BigUint64Array;
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

export interface ConnectOptions {
  /** Give up connecting + hello after this long (default 5 s). */
  connectTimeoutMs?: number;
  /** Default per-request timeout (default 15 s). */
  requestTimeoutMs?: number;
}

interface Pending {
  type: number;
  resolve(payload: Buffer): void;
  reject(err: HelperError): void;
  timer: NodeJS.Timeout;
}

export interface HelperClientEvents {
  event: [HelperEvent];
  console: [Buffer];
  close: [HelperError];
}

function encodeHeader(length: number, type: number, flags: number, id: number): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(id, 8);
  return h;
}

function toBig(v: unknown): bigint {
  return typeof v === "string" || typeof v === "number" ? BigInt(v) : 0n;
}

export class HelperClient extends EventEmitter<HelperClientEvents> {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buf: Buffer = Buffer.alloc(0);
  private closedError: HelperError | undefined;
  /** The status the helper returned in its HELLO reply. */
  hello: HelperStatus | undefined;

  private constructor(
    private readonly socket: net.Socket,
    readonly path: string,
    private readonly requestTimeoutMs: number,
  ) {
    super();
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.fail(new HelperError("CONNECTION_CLOSED", `control socket ${path}: ${err.message}`)));
    socket.on("close", () => this.fail(new HelperError("CONNECTION_CLOSED", `control socket ${path} closed`)));
  }

  /** Connects to a helper's control socket and says HELLO. */
  static async connect(path: string, opts: ConnectOptions = {}): Promise<HelperClient> {
    const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection({ path });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new HelperError("TIMEOUT", `connecting to ${path} timed out`));
      }, connectTimeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once("error", (err) => {
        clearTimeout(timer);
        reject(new HelperError("CONNECT_FAILED", `connecting to ${path}: ${err.message}`));
      });
    });
    const client = new HelperClient(socket, path, opts.requestTimeoutMs ?? 15_000);
    try {
      const reply = await client.request(MsgType.HELLO, Buffer.from(JSON.stringify({ version: PROTOCOL_VERSION })), connectTimeoutMs);
      client.hello = JSON.parse(reply.toString("utf8")) as HelperStatus;
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Sends one request and resolves with the reply payload (rejects with HelperError). */
  request(type: number, payload: Buffer = Buffer.alloc(0), timeoutMs = this.requestTimeoutMs): Promise<Buffer> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (payload.length > MAX_PAYLOAD) {
      return Promise.reject(new HelperError("TOO_LARGE", `payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`));
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new HelperError("TIMEOUT", `request type ${type} (id ${id}) timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { type, resolve, reject, timer });
      this.socket.write(Buffer.concat([encodeHeader(payload.length, type, 0, id), payload]));
    });
  }

  /** Writes raw bytes to the socket (tests of the helper's input checks). */
  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  private async json<T>(type: number, body?: unknown, timeoutMs?: number): Promise<T> {
    const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body));
    const reply = await this.request(type, payload, timeoutMs);
    return (reply.length ? JSON.parse(reply.toString("utf8")) : {}) as T;
  }

  status(): Promise<HelperStatus> {
    return this.json<HelperStatus>(MsgType.STATUS);
  }

  async start(): Promise<void> {
    await this.request(MsgType.START);
  }

  /** Resolves once every vCPU is out of KVM_RUN. */
  async pause(): Promise<void> {
    await this.request(MsgType.PAUSE);
  }

  async resume(): Promise<void> {
    await this.request(MsgType.RESUME);
  }

  /** Asks the guest to power off, forces after timeoutMs; the helper exits after replying. */
  stop(timeoutMs = 3000): Promise<StopResult> {
    return this.json<StopResult>(MsgType.STOP, { timeoutMs }, timeoutMs + 10_000);
  }

  /** Registers of one vCPU; only while the VM is not running. */
  async getRegs(vcpu = 0): Promise<Registers> {
    const raw = await this.json<Record<string, unknown>>(MsgType.GET_REGS, { vcpu });
    return parseRegs(raw);
  }

  /** Sets the named registers (others keep their values) and returns all of them. */
  async setRegs(vcpu: number, regs: Record<string, bigint | number>): Promise<Registers> {
    const body: Record<string, string | number> = { vcpu };
    for (const [k, v] of Object.entries(regs)) body[k] = `0x${BigInt(v).toString(16)}`;
    const raw = await this.json<Record<string, unknown>>(MsgType.SET_REGS, body);
    return parseRegs(raw);
  }

  readMemory(gpa: bigint | number, length: number): Promise<Buffer> {
    const p = Buffer.alloc(16);
    p.writeBigUInt64LE(BigInt(gpa), 0);
    p.writeUInt32LE(length >>> 0, 8);
    return this.request(MsgType.READ_MEM, p);
  }

  async writeMemory(gpa: bigint | number, data: Uint8Array): Promise<void> {
    const p = Buffer.alloc(16);
    p.writeBigUInt64LE(BigInt(gpa), 0);
    p.writeUInt32LE(data.length, 8);
    await this.request(MsgType.WRITE_MEM, Buffer.concat([p, data]));
  }

  stats(): Promise<HelperStats> {
    return this.json<HelperStats>(MsgType.STATS);
  }

  /** Feeds the guest's serial input; resolves with how many bytes fitted. */
  async consoleWrite(data: Uint8Array | string): Promise<number> {
    const reply = await this.request(MsgType.CONSOLE_WRITE, Buffer.from(data));
    return (JSON.parse(reply.toString("utf8")) as { accepted: number }).accepted;
  }

  /** The last maxBytes (default 64 KiB, at most 1 MiB) of console output. */
  consoleRead(maxBytes = 64 << 10): Promise<Buffer> {
    const p = Buffer.alloc(4);
    p.writeUInt32LE(maxBytes >>> 0, 0);
    return this.request(MsgType.CONSOLE_READ, p);
  }

  /** Queues keyboard scancodes (set 1) for the i8042. */
  async keyboard(scancodes: Uint8Array): Promise<number> {
    const reply = await this.request(MsgType.KEYBOARD, Buffer.from(scancodes));
    return (JSON.parse(reply.toString("utf8")) as { accepted: number }).accepted;
  }

  /** Queues a command word for the guest's debug-device mailbox: (arg << 8) | op. */
  async guestCommand(op: number, arg = 0): Promise<void> {
    const p = Buffer.alloc(4);
    p.writeUInt32LE(((arg & 0xffffff) << 8 | (op & 0xff)) >>> 0, 0);
    await this.request(MsgType.GUEST_COMMAND, p);
  }

  /** Framebuffer geometry and the path of its file. */
  displayInfo(): Promise<DisplayInfo> {
    return this.json<DisplayInfo>(MsgType.DISPLAY_INFO);
  }

  /** Fetches and clears the framebuffer's dirty-page bitmap (KVM_GET_DIRTY_LOG). */
  async dirty(): Promise<DirtyPages> {
    const reply = await this.request(MsgType.DIRTY);
    if (reply.length < 4) throw new HelperError("PROTOCOL", `DIRTY reply of ${reply.length} bytes`);
    const pages = reply.readUInt32LE(0);
    const words = Math.ceil(pages / 64);
    if (reply.length !== 4 + words * 8) throw new HelperError("PROTOCOL", `DIRTY reply of ${reply.length} bytes for ${pages} pages`);
    const bitmap = new BigUint64Array(words);
    for (let i = 0; i < words; i++) bitmap[i] = reply.readBigUInt64LE(4 + i * 8);
    return { pages, bitmap };
  }

  /** Sets the pointer position/buttons the guest sees (bit 0 left, 1 right, 2 middle) and rings its doorbell. */
  async pointer(x: number, y: number, buttons = 0): Promise<void> {
    await this.request(MsgType.POINTER, Buffer.from(JSON.stringify({ x: Math.max(0, Math.trunc(x)), y: Math.max(0, Math.trunc(y)), buttons: buttons >>> 0 })));
  }

  /** Resolves with the first event matching pred (rejects on timeout or close). */
  waitFor<E extends HelperEvent>(pred: (e: HelperEvent) => e is E, timeoutMs?: number): Promise<E>;
  waitFor(pred: (e: HelperEvent) => boolean, timeoutMs?: number): Promise<HelperEvent>;
  waitFor(pred: (e: HelperEvent) => boolean, timeoutMs = 30_000): Promise<HelperEvent> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off("event", onEvent);
        this.off("close", onClose);
      };
      const onEvent = (e: HelperEvent): void => {
        if (pred(e)) {
          cleanup();
          resolve(e);
        }
      };
      const onClose = (err: HelperError): void => {
        cleanup();
        reject(err);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new HelperError("TIMEOUT", `no matching event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on("event", onEvent);
      this.on("close", onClose);
    });
  }

  close(): void {
    this.socket.destroy();
    this.fail(new HelperError("CONNECTION_CLOSED", "client closed the connection"));
  }

  private fail(err: HelperError): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.emit("close", err);
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= HEADER_SIZE) {
      const length = this.buf.readUInt32LE(0);
      if (length > MAX_PAYLOAD) {
        this.socket.destroy();
        this.fail(new HelperError("PROTOCOL", `helper sent a ${length}-byte message`));
        return;
      }
      if (this.buf.length < HEADER_SIZE + length) return;
      const type = this.buf.readUInt16LE(4);
      const flags = this.buf.readUInt16LE(6);
      const id = this.buf.readUInt32LE(8);
      const payload = Buffer.from(this.buf.subarray(HEADER_SIZE, HEADER_SIZE + length));
      this.buf = this.buf.subarray(HEADER_SIZE + length);
      if (flags & Flags.EVENT) this.onEvent(type, flags, id, payload);
      else this.onReply(type, flags, id, payload);
    }
  }

  private onReply(type: number, flags: number, id: number, payload: Buffer): void {
    const p = this.pending.get(id);
    if (!p) {
      // An error reply to a message the helper could not attribute (e.g. garbage) has no
      // pending request; surface it as an unknown event rather than dropping it silently.
      this.emit("event", { kind: "unknown", seq: id, type, payload });
      return;
    }
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (flags & Flags.ERROR) {
      let body: { code?: number; name?: string; message?: string } = {};
      try {
        body = JSON.parse(payload.toString("utf8")) as typeof body;
      } catch {
        /* fall through with an empty body */
      }
      p.reject(new HelperError((body.name ?? "PROTOCOL") as HelperErrorCode, body.message ?? "error reply", body.code));
    } else {
      p.resolve(payload);
    }
  }

  private onEvent(type: number, flags: number, seq: number, payload: Buffer): void {
    let e: HelperEvent;
    if (type === EventType.CONSOLE) {
      e = { kind: "console", seq, data: payload, truncated: (flags & Flags.TRUNCATED) !== 0 };
      this.emit("console", payload);
    } else {
      let j: Record<string, unknown> = {};
      try {
        j = JSON.parse(payload.toString("utf8")) as Record<string, unknown>;
      } catch {
        /* unknown payload */
      }
      switch (type) {
        case EventType.STATE:
          e = { kind: "state", seq, state: j.state as VmState, reason: String(j.reason ?? "") };
          break;
        case EventType.RESET:
          e = { kind: "reset", seq, source: String(j.source ?? "") };
          break;
        case EventType.POWEROFF:
          e = { kind: "poweroff", seq, source: String(j.source ?? "") };
          break;
        case EventType.TRIPLE_FAULT:
        case EventType.INTERNAL_ERROR:
          e = {
            kind: type === EventType.TRIPLE_FAULT ? "tripleFault" : "internalError",
            seq,
            vcpu: Number(j.vcpu ?? 0),
            rip: toBig(j.rip),
            exitReason: Number(j.exitReason ?? 0),
            message: String(j.message ?? ""),
          };
          break;
        case EventType.DEBUG:
          e = { kind: "debug", seq, port: Number(j.port), size: Number(j.size), value: Number(j.value) };
          break;
        default:
          e = { kind: "unknown", seq, type, payload };
      }
    }
    this.emit("event", e);
  }
}

function parseRegs(raw: Record<string, unknown>): Registers {
  const out: Registers = {};
  for (const [k, v] of Object.entries(raw)) if (k !== "vcpu") out[k] = toBig(v);
  return out;
}
