// What every linked SPICE channel shares: message framing both ways, the base messages (ACK_SYNC, ACK,
// PONG, DISCONNECTING), SET_ACK flow control, and closing on a protocol error or a dead peer without
// touching any other channel or client.
import type { Duplex } from "node:stream";
import type { Logger } from "../logger.js";
import { CHANNEL_NAMES, MSG, MSGC, MessageReader, Reader, WireError, Writer, messageHeader, type ChannelName } from "./wire.js";

export interface ChannelInit {
  stream: Duplex;
  channelType: number;
  miniHeader: boolean;
  /** Bytes the client sent right after linking. */
  leftover: Buffer;
  log: Logger;
}

export abstract class SpiceChannel {
  readonly name: ChannelName;
  readonly channelType: number;
  protected readonly log: Logger;
  private readonly stream: Duplex;
  private readonly mini: boolean;
  private readonly reader: MessageReader;
  private serial = 0n;
  private closedReason: string | undefined;
  private readonly closeHooks: ((reason: string) => void)[] = [];
  private readonly writableWaiters = new Set<() => void>();
  // SET_ACK flow control: the client ACKs every `ackWindow` messages sent after our SET_ACK.
  private ackGeneration = 0;
  private ackWindow = 0;
  private clientGeneration = -1;
  private sentSinceAck = 0;
  private acks = 0;

  constructor(init: ChannelInit) {
    this.channelType = init.channelType;
    this.name = CHANNEL_NAMES.get(init.channelType)!;
    this.stream = init.stream;
    this.mini = init.miniHeader;
    this.log = init.log.child({ channel: this.name });
    this.reader = new MessageReader(init.channelType, init.miniHeader);
    this.stream.on("data", (chunk: Buffer) => this.receive(chunk));
    this.stream.on("drain", () => this.wakeWriters());
    this.stream.on("end", () => this.close("the client closed the connection"));
    this.stream.on("close", () => this.close("the connection closed"));
    this.stream.on("error", (err: Error) => this.close(`connection error: ${err.message}`));
    // Leftover bytes are handled once the subclass is constructed.
    if (init.leftover.length) queueMicrotask(() => this.receive(init.leftover));
  }

  /** Why the channel closed, once it has. */
  get closed(): string | undefined {
    return this.closedReason;
  }

  onClose(hook: (reason: string) => void): void {
    if (this.closedReason !== undefined) hook(this.closedReason);
    else this.closeHooks.push(hook);
  }

  /** Sends one message: its header, then the parts of its body (large pixel data is not copied). */
  send(type: number, ...parts: Buffer[]): void {
    if (this.closedReason !== undefined) return;
    const size = parts.reduce((n, p) => n + p.length, 0);
    this.stream.cork();
    this.stream.write(messageHeader(this.mini, ++this.serial, type, size));
    for (const p of parts) this.stream.write(p);
    this.stream.uncork();
    if (this.ackWindow > 0) this.sentSinceAck++;
  }

  /** Starts SET_ACK flow control: the client acknowledges every `window` messages. */
  protected startAck(window: number): void {
    this.ackGeneration++;
    this.ackWindow = 0;
    this.send(MSG.SET_ACK, new Writer(8).u32(this.ackGeneration).u32(window).done());
    this.ackWindow = window;
    this.sentSinceAck = 0;
    this.acks = 0;
  }

  /** Messages sent since SET_ACK that the client has not acknowledged. */
  get unacked(): number {
    return this.ackWindow > 0 ? this.sentSinceAck - this.acks * this.ackWindow : 0;
  }

  /**
   * Resolves when the socket has drained and at most two windows are unacknowledged (spice-server's
   * rule: the client acks one window while the next is in flight), or when the channel closed.
   */
  writable(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.closedReason === undefined && (this.stream.writableNeedDrain || this.unacked > 2 * this.ackWindow)) return;
        this.writableWaiters.delete(check);
        resolve();
      };
      this.writableWaiters.add(check);
      check();
    });
  }

  private wakeWriters(): void {
    for (const w of [...this.writableWaiters]) w();
  }

  /** Closes this channel once; DISCONNECTING first when `notify` (a clean close by us). */
  close(reason: string, notify = false): void {
    if (this.closedReason !== undefined) return;
    if (notify) this.send(MSG.DISCONNECTING, new Writer(12).u64(BigInt(Date.now())).u32(0).done());
    this.closedReason = reason;
    this.log.debug({ reason }, "SPICE channel closed");
    this.stream.end();
    setTimeout(() => this.stream.destroy(), 2000).unref();
    this.wakeWriters();
    this.release(reason);
    for (const h of this.closeHooks.splice(0)) h(reason);
  }

  /** Subclasses release what they hold (watches, timers). */
  protected release(_reason: string): void {}

  /** A message of this channel's own set (base messages are handled here). */
  protected abstract handle(type: number, r: Reader): void;

  /** Answers a PONG (main channel). */
  protected pong(_id: number, _timestamp: bigint): void {}

  private receive(chunk: Buffer): void {
    if (this.closedReason !== undefined) return;
    try {
      for (const m of this.reader.push(chunk)) {
        if (this.closedReason !== undefined) return;
        this.dispatch(m.type, new Reader(m.body, `message ${m.type} on the ${this.name} channel`));
      }
    } catch (err) {
      // Whatever a client sends, only its own channel pays for it.
      if (err instanceof WireError) {
        this.log.warn({ reason: err.message }, "SPICE client dropped: protocol error");
        this.close(`protocol error: ${err.message}`);
      } else {
        this.log.error({ err }, "SPICE channel failed on a client message");
        this.close(`internal error: ${(err as Error).message}`);
      }
    }
  }

  private dispatch(type: number, r: Reader): void {
    switch (type) {
      case MSGC.ACK_SYNC:
        this.clientGeneration = r.u32();
        return;
      case MSGC.ACK:
        if (this.clientGeneration === this.ackGeneration) this.acks++;
        this.wakeWriters();
        return;
      case MSGC.PONG:
        return this.pong(r.u32(), r.u64());
      case MSGC.DISCONNECTING:
        return this.close("the client disconnected");
      default:
        return this.handle(type, r);
    }
  }
}
