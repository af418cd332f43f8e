// The transport of the qumra-vmm control protocol: one unix socket per VM, request ids, the replies
// waiting for them, timeouts, and the events the helper pushes. What goes on the wire is
// helper-protocol.ts; this file only moves frames.
import { EventEmitter } from "node:events";
import net from "node:net";
import { HELPER_ANSWER_MS, helperWaitMs } from "./call-deadline.js";
import { HelperError } from "./helper-errors.js";
import {
  Flags,
  MAX_PAYLOAD,
  MsgType,
  decodeAccepted,
  decodeDirty,
  decodeDirtyLogReply,
  decodeRamDirty,
  decodeDisplayInfo,
  decodeErrorReply,
  decodeEvent,
  decodeLoadStateReply,
  decodeRamChecksum,
  decodeRamMap,
  decodeStateChunk,
  decodeMouseReply,
  decodeRegs,
  decodeStats,
  decodeStatus,
  decodeStopResult,
  encodeConsoleRead,
  encodeDirtyLog,
  encodeReadPages,
  encodeWritePages,
  encodeFrame,
  encodeGetRegs,
  encodeGuestCommand,
  encodeHello,
  encodeLoadState,
  encodeMouse,
  encodeRamMap,
  encodeSaveState,
  encodePointer,
  encodeReadMemory,
  encodeSetRegs,
  encodeStop,
  encodeWriteMemory,
  splitFrames,
  type DirtyLogReply,
  type DirtyPages,
  type PageRun,
  type RamDirtySlot,
  runsBytes,
  type DisplayInfo,
  type Frame,
  type HelperEvent,
  type HelperStats,
  type HelperStatus,
  type MouseReply,
  type RamChecksum,
  type RamRange,
  type Registers,
  STATE_CHUNK,
  type StopResult,
} from "./helper-protocol.js";

export interface ConnectOptions {
  /** The VM's control secret, sent in HELLO (control-secret.ts). */
  secret: string;
  /** Give up connecting + hello after this long (default 5 s). */
  connectTimeoutMs?: number;
  /**
   * Longest wait for one answer (default 5 s); a request made while serving a client call waits at most
   * that call's remaining time minus a margin (call-deadline.ts).
   */
  requestTimeoutMs?: number;
  /** The helper's pid, named in timeout errors. */
  pid?: number;
  /** Requests waiting for their replies at once (default MAX_IN_FLIGHT). */
  maxInFlight?: number;
}

/**
 * Bounds on what the agent holds for one helper: requests waiting for replies, and request bytes
 * the socket has not sent yet (the helper stops reading requests while its replies are not read).
 * Past either, a request is refused (BUSY, RESOURCE_EXHAUSTED) instead of queued.
 */
export const MAX_IN_FLIGHT = 256;
export const MAX_UNSENT_BYTES = 16 << 20;

interface Pending {
  resolve(payload: Buffer): void;
  reject(err: HelperError): void;
  timer: NodeJS.Timeout;
  sentAt: number;
}

export interface HelperClientEvents {
  event: [HelperEvent];
  console: [Buffer];
  close: [HelperError];
}

export class HelperClient extends EventEmitter<HelperClientEvents> {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buf: Buffer = Buffer.alloc(0);
  private closedError: HelperError | undefined;
  private markEnded!: (err: HelperError) => void;
  /** Resolves once, with why, when the connection ends (the helper exited or closed it, or close() was called). */
  readonly ended = new Promise<HelperError>((resolve) => (this.markEnded = resolve));
  /** The status the helper returned in its HELLO reply. */
  hello: HelperStatus | undefined;
  /** When the first request that timed out was sent, if nothing has arrived from the helper since. */
  private missedSince: number | undefined;

  private constructor(
    private readonly socket: net.Socket,
    readonly path: string,
    private readonly requestTimeoutMs: number,
    private readonly pid: number | undefined,
    private readonly maxInFlight: number,
  ) {
    super();
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.fail(new HelperError("CONNECTION_CLOSED", `control socket ${path}: ${err.message}`)));
    socket.on("close", () => this.fail(new HelperError("CONNECTION_CLOSED", `control socket ${path} closed`)));
  }

  /** Connects to a helper's control socket and says HELLO with the VM's secret. */
  static async connect(path: string, opts: ConnectOptions): Promise<HelperClient> {
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
    const client = new HelperClient(socket, path, opts.requestTimeoutMs ?? HELPER_ANSWER_MS, opts.pid, opts.maxInFlight ?? MAX_IN_FLIGHT);
    try {
      client.hello = decodeStatus(await client.request(MsgType.HELLO, encodeHello(opts.secret), connectTimeoutMs));
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Requests waiting for their replies. */
  get inFlight(): number {
    return this.pending.size;
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /**
   * Since when (epoch ms) the helper has not answered: a request timed out with nothing heard since, or
   * one has waited longer than `afterMs`. Undefined while it answers.
   */
  notAnsweringSince(afterMs: number): number | undefined {
    if (this.missedSince !== undefined) return this.missedSince;
    let oldest: number | undefined;
    for (const p of this.pending.values()) if (oldest === undefined || p.sentAt < oldest) oldest = p.sentAt;
    return oldest !== undefined && Date.now() - oldest > afterMs ? oldest : undefined;
  }

  /**
   * Sends one request and resolves with the reply payload (rejects with HelperError). It waits at most
   * timeoutMs, and never past the deadline of the client call it serves.
   */
  request(type: number, payload: Uint8Array = Buffer.alloc(0), limitMs = this.requestTimeoutMs): Promise<Buffer> {
    const timeoutMs = helperWaitMs(limitMs);
    if (this.closedError) return Promise.reject(this.closedError);
    if (payload.length > MAX_PAYLOAD) {
      return Promise.reject(new HelperError("TOO_LARGE", `payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`));
    }
    if (this.pending.size >= this.maxInFlight) {
      return Promise.reject(new HelperError("BUSY", `${this.pending.size} requests already wait for the VM's helper, the most one VM may have in flight; retry when they have answered`));
    }
    if (this.socket.writableLength > MAX_UNSENT_BYTES) {
      return Promise.reject(new HelperError("BUSY", `${this.socket.writableLength} bytes of requests wait to be sent to the VM's helper (at most ${MAX_UNSENT_BYTES}); retry when it has read them`));
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return new Promise<Buffer>((resolve, reject) => {
      const sentAt = Date.now();
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.missedSince ??= sentAt;
        const who = this.pid ? `helper pid ${this.pid}` : `the helper at ${this.path}`;
        reject(new HelperError("TIMEOUT", `${who} did not answer in ${(timeoutMs / 1000).toFixed(1)} s (stopped? hung?) (request type ${type}, id ${id})`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, sentAt });
      this.socket.write(encodeFrame(type, 0, id, payload));
    });
  }

  /** Writes raw bytes to the socket (tests of the helper's input checks). */
  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  async status(): Promise<HelperStatus> {
    return decodeStatus(await this.request(MsgType.STATUS));
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
  async stop(timeoutMs = 3000, answerMs = timeoutMs + this.requestTimeoutMs): Promise<StopResult> {
    return decodeStopResult(await this.request(MsgType.STOP, encodeStop(timeoutMs), answerMs));
  }

  /** Registers of one vCPU; only while the VM is not running. */
  async getRegs(vcpu = 0): Promise<Registers> {
    return decodeRegs(await this.request(MsgType.GET_REGS, encodeGetRegs(vcpu)));
  }

  /** Sets the named registers (others keep their values) and returns all of them. */
  async setRegs(vcpu: number, regs: Record<string, bigint | number>): Promise<Registers> {
    return decodeRegs(await this.request(MsgType.SET_REGS, encodeSetRegs(vcpu, regs)));
  }

  readMemory(gpa: bigint | number, length: number): Promise<Buffer> {
    return this.request(MsgType.READ_MEM, encodeReadMemory(gpa, length));
  }

  async writeMemory(gpa: bigint | number, data: Uint8Array): Promise<void> {
    await this.request(MsgType.WRITE_MEM, encodeWriteMemory(gpa, data));
  }

  async stats(): Promise<HelperStats> {
    return decodeStats(await this.request(MsgType.STATS));
  }

  /** Feeds the guest's serial input; resolves with how many bytes fitted. */
  async consoleWrite(data: Uint8Array | string): Promise<number> {
    return decodeAccepted(await this.request(MsgType.CONSOLE_WRITE, Buffer.from(data)));
  }

  /** The last maxBytes (default 64 KiB, at most 1 MiB) of console output. */
  consoleRead(maxBytes = 64 << 10): Promise<Buffer> {
    return this.request(MsgType.CONSOLE_READ, encodeConsoleRead(maxBytes));
  }

  /** Queues keyboard scancodes (set 1) for the i8042; resolves with how many were accepted. */
  async keyboard(scancodes: Uint8Array): Promise<number> {
    return decodeAccepted(await this.request(MsgType.KEYBOARD, scancodes));
  }

  /** Queues a command word for the guest's debug-device mailbox: (arg << 8) | op. */
  async guestCommand(op: number, arg = 0): Promise<void> {
    await this.request(MsgType.GUEST_COMMAND, encodeGuestCommand(op, arg));
  }

  /** Framebuffer geometry and the path of its file. */
  async displayInfo(): Promise<DisplayInfo> {
    return decodeDisplayInfo(await this.request(MsgType.DISPLAY_INFO));
  }

  /** Fetches and clears the framebuffer's dirty-page bitmap (KVM_GET_DIRTY_LOG). */
  async dirty(): Promise<DirtyPages> {
    return decodeDirty(await this.request(MsgType.DIRTY));
  }

  /** Sets the pointer position/buttons the guest sees (bit 0 left, 1 right, 2 middle) and rings its doorbell. */
  async pointer(x: number, y: number, buttons = 0): Promise<void> {
    await this.request(MsgType.POINTER, encodePointer(x, y, buttons));
  }

  /**
   * Moves the guest's PS/2 mouse: dx, dy in screen coordinates (dy positive down), wheel positive towards
   * the user, buttons bit 0 left, 1 right, 2 middle. Resolves with the packets queued and whether the
   * guest's mouse reports at all.
   */
  async mouse(dx: number, dy: number, wheel = 0, buttons = 0): Promise<MouseReply> {
    return decodeMouseReply(await this.request(MsgType.MOUSE, encodeMouse(dx, dy, wheel, buttons)));
  }

  /**
   * The VM's whole non-RAM state (SAVE_STATE, VM paused or created): the blob, read in chunks; onChunk
   * sees the bytes read so far and the total.
   */
  async saveState(onChunk?: (done: number, total: number) => void): Promise<Buffer> {
    const first = decodeStateChunk(await this.request(MsgType.SAVE_STATE, encodeSaveState(0)));
    const blob = Buffer.alloc(first.total);
    first.bytes.copy(blob, 0);
    let done = first.bytes.length;
    onChunk?.(done, first.total);
    while (done < first.total) {
      const c = decodeStateChunk(await this.request(MsgType.SAVE_STATE, encodeSaveState(done)));
      if (c.offset !== done || c.total !== first.total || c.bytes.length === 0) throw new HelperError("PROTOCOL", `SAVE_STATE answered [${c.offset}, +${c.bytes.length}) of ${c.total} when asked for offset ${done} of ${first.total}`);
      c.bytes.copy(blob, done);
      done += c.bytes.length;
      onChunk?.(done, first.total);
    }
    return blob;
  }

  /**
   * Loads a state blob (LOAD_STATE, VM created or paused), in chunks; the last one makes the helper check
   * and apply it, leaving the VM paused at the saved point. A refused blob rejects with INVALID_ARGUMENT
   * and the VM is unchanged.
   */
  async loadState(blob: Uint8Array, onChunk?: (done: number, total: number) => void): Promise<void> {
    let done = 0;
    do {
      const chunk = blob.subarray(done, done + STATE_CHUNK);
      const reply = decodeLoadStateReply(await this.request(MsgType.LOAD_STATE, encodeLoadState(blob.length, done, chunk)));
      done += chunk.length;
      onChunk?.(done, blob.length);
      if (done >= blob.length && !reply.loaded) throw new HelperError("PROTOCOL", `LOAD_STATE took all ${blob.length} bytes but did not load them`);
    } while (done < blob.length);
  }

  /** The guest RAM ranges that hold data (RAM_MAP, every reply of it). */
  async ramMap(): Promise<RamRange[]> {
    const all: RamRange[] = [];
    for (let from = 0; ; ) {
      const { ranges, more } = decodeRamMap(await this.request(MsgType.RAM_MAP, encodeRamMap(from)));
      all.push(...ranges);
      const last = ranges.at(-1);
      if (!more || !last) return all;
      from = last.gpa + last.length;
    }
  }

  /** CRC-32 of all guest RAM (RAM_CHECKSUM). */
  async ramChecksum(): Promise<RamChecksum> {
    return decodeRamChecksum(await this.request(MsgType.RAM_CHECKSUM));
  }

  /**
   * Turns KVM's dirty-page logging of guest RAM on or off (RAM_DIRTY_LOG; any state, idempotent). Pages
   * written after it is turned on show in the next ramDirty().
   */
  async ramDirtyLog(on: boolean): Promise<DirtyLogReply> {
    return decodeDirtyLogReply(await this.request(MsgType.RAM_DIRTY_LOG, encodeDirtyLog(on)));
  }

  /** Fetches and clears the RAM slots' dirty bitmaps (RAM_DIRTY); WRONG_STATE while logging is off. */
  async ramDirty(): Promise<RamDirtySlot[]> {
    return decodeRamDirty(await this.request(MsgType.RAM_DIRTY));
  }

  /** The runs' bytes back to back (READ_PAGES: at most PAGES_MAX pages, each run inside one RAM slot). */
  async readPages(runs: readonly PageRun[]): Promise<Buffer> {
    const data = await this.request(MsgType.READ_PAGES, encodeReadPages(runs));
    const want = runsBytes(runs);
    if (data.length !== want) throw new HelperError("PROTOCOL", `READ_PAGES answered ${data.length} bytes for ${want}`);
    return data;
  }

  /** Writes the runs from data, their bytes back to back (WRITE_PAGES; refused while the VM runs). */
  async writePages(runs: readonly PageRun[], data: Uint8Array): Promise<void> {
    await this.request(MsgType.WRITE_PAGES, encodeWritePages(runs, data));
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
    this.markEnded(err);
    this.emit("close", err);
  }

  private onData(chunk: Buffer): void {
    this.missedSince = undefined;
    const { frames, rest, error } = splitFrames(this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk);
    this.buf = rest;
    for (const frame of frames) {
      if (frame.flags & Flags.EVENT) this.onEvent(frame);
      else this.onReply(frame);
    }
    if (error) {
      this.socket.destroy();
      this.fail(error);
    }
  }

  private onReply(frame: Frame): void {
    const p = this.pending.get(frame.id);
    if (!p) {
      // An error reply to a message the helper could not attribute (e.g. garbage) has no
      // pending request; surface it as an unknown event rather than dropping it silently.
      this.emit("event", { kind: "unknown", seq: frame.id, type: frame.type, payload: frame.payload });
      return;
    }
    this.pending.delete(frame.id);
    clearTimeout(p.timer);
    if (frame.flags & Flags.ERROR) p.reject(decodeErrorReply(frame.payload));
    else p.resolve(frame.payload);
  }

  private onEvent(frame: Frame): void {
    const e = decodeEvent(frame);
    if (e.kind === "console") this.emit("console", e.data);
    this.emit("event", e);
  }
}
