// One console attachment's outbox: output waits here while the attachment's reader is behind. It is
// bounded: past its capacity the oldest output is dropped and, in its place, the reader gets an in-band
// marker "[qumra: N bytes dropped]", so a reader that never reads costs the agent a fixed amount of memory.
// Output goes straight to the transport while it keeps up; only what waits is copied (byte-queue.ts).
import { CONSOLE_BACKLOG_BYTES, CONSOLE_MESSAGES_IN_FLIGHT, CONSOLE_MESSAGE_BYTES } from "../limits.js";
import { ByteQueue } from "./byte-queue.js";

export interface ConsoleMessage {
  data: Buffer;
  /** Output from before the attachment (the scrollback). */
  scrollback: boolean;
}

/** Hands one message to the transport; `taken` is called once the transport has taken it. */
export type ConsoleSend = (message: ConsoleMessage, taken: () => void) => void;

export interface ConsoleBacklogOptions {
  capacity?: number;
  inFlight?: number;
  messageBytes?: number;
}

export function dropMarker(bytes: number): Buffer {
  return Buffer.from(`\r\n[qumra: ${bytes} bytes dropped]\r\n`);
}

export class ConsoleBacklog {
  private readonly queue: ByteQueue;
  /** The first this many bytes of the queue are scrollback. */
  private scrollbackBytes = 0;
  /** Dropped since the last marker was sent. */
  private unreported = 0;
  private inFlight = 0;
  private closed = false;
  private whenIdle: (() => void) | undefined;
  /** Bytes dropped over the attachment's life. */
  dropped = 0;
  private readonly capacity: number;
  private readonly maxInFlight: number;
  private readonly messageBytes: number;

  constructor(
    private readonly send: ConsoleSend,
    options: ConsoleBacklogOptions = {},
  ) {
    this.capacity = options.capacity ?? CONSOLE_BACKLOG_BYTES;
    this.maxInFlight = options.inFlight ?? CONSOLE_MESSAGES_IN_FLIGHT;
    // Messages in flight are bounded like the backlog: a small backlog has small messages.
    this.messageBytes = options.messageBytes ?? Math.max(1, Math.min(CONSOLE_MESSAGE_BYTES, this.capacity >> 2));
    this.queue = new ByteQueue(this.messageBytes);
  }

  /** Bytes waiting (not yet handed to the transport). */
  get size(): number {
    return this.queue.size;
  }

  /** Messages handed to the transport and not yet taken by it. */
  get pending(): number {
    return this.inFlight;
  }

  push(data: Buffer, scrollback = false): void {
    if (this.closed || data.length === 0) return;
    let offset = 0;
    if (this.queue.size === 0) {
      // The transport keeps up: straight to it, no copy (a few messages in flight at most).
      while (offset < data.length && this.inFlight < this.maxInFlight) {
        const part = data.subarray(offset, offset + this.messageBytes);
        offset += part.length;
        this.dispatch({ data: part, scrollback });
      }
      if (offset === data.length) return;
    }
    const rest = data.subarray(offset);
    this.queue.append(rest);
    if (scrollback) this.scrollbackBytes += rest.length;
    if (this.queue.size > this.capacity) {
      const cut = this.queue.dropFront(this.queue.size - this.capacity);
      this.scrollbackBytes = Math.max(0, this.scrollbackBytes - cut);
      this.unreported += cut;
      this.dropped += cut;
    }
    this.pump();
  }

  /** Calls `done` once everything waiting has been taken by the transport (the console ended). */
  finish(done: () => void): void {
    this.whenIdle = done;
    this.checkIdle();
  }

  /** Stops sending (the attachment ended); what waits is let go. */
  close(): void {
    this.closed = true;
    this.queue.clear();
    this.scrollbackBytes = 0;
  }

  private dispatch(message: ConsoleMessage): void {
    this.inFlight++;
    let done = false;
    this.send(message, () => {
      if (done) return;
      done = true;
      this.inFlight--;
      this.pump();
      this.checkIdle();
    });
  }

  private pump(): void {
    while (!this.closed && this.inFlight < this.maxInFlight) {
      const message = this.take();
      if (!message) return;
      this.dispatch(message);
    }
  }

  private checkIdle(): void {
    if (this.closed || !this.whenIdle || this.queue.size > 0 || this.inFlight > 0) return;
    const done = this.whenIdle;
    this.whenIdle = undefined;
    done();
  }

  /** The marker first if output was dropped, else the oldest waiting output, up to messageBytes. */
  private take(): ConsoleMessage | undefined {
    if (this.queue.size === 0) return undefined;
    const scrollback = this.scrollbackBytes > 0;
    if (this.unreported > 0) {
      const marker = { data: dropMarker(this.unreported), scrollback };
      this.unreported = 0;
      return marker;
    }
    const data = this.queue.takeFront(scrollback ? Math.min(this.messageBytes, this.scrollbackBytes) : this.messageBytes);
    if (!data) return undefined;
    if (scrollback) this.scrollbackBytes -= data.length;
    return { data, scrollback };
  }
}
