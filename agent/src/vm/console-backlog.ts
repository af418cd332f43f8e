// One console attachment's outbox: output waits here while the attachment's reader is behind. It is
// bounded: past its capacity the oldest output is dropped and, in its place, the reader gets an in-band
// marker "[qumra: N bytes dropped]", so a reader that never reads costs the agent a fixed amount of memory.
import { CONSOLE_BACKLOG_BYTES, CONSOLE_MESSAGES_IN_FLIGHT, CONSOLE_MESSAGE_BYTES } from "../limits.js";

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
  private queue: ConsoleMessage[] = [];
  private queued = 0;
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
    this.messageBytes = options.messageBytes ?? CONSOLE_MESSAGE_BYTES;
  }

  /** Bytes waiting (not yet handed to the transport). */
  get size(): number {
    return this.queued;
  }

  push(data: Buffer, scrollback = false): void {
    if (this.closed || data.length === 0) return;
    this.queue.push({ data, scrollback });
    this.queued += data.length;
    this.trim();
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
    this.queue = [];
    this.queued = 0;
  }

  private trim(): void {
    while (this.queued > this.capacity) {
      const excess = this.queued - this.capacity;
      const first = this.queue[0];
      const cut = Math.min(excess, first.data.length);
      if (cut === first.data.length) this.queue.shift();
      else first.data = first.data.subarray(cut);
      this.queued -= cut;
      this.unreported += cut;
      this.dropped += cut;
    }
  }

  private pump(): void {
    while (!this.closed && this.inFlight < this.maxInFlight) {
      const message = this.take();
      if (!message) return;
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
  }

  private checkIdle(): void {
    if (this.closed || !this.whenIdle || this.queue.length > 0 || this.inFlight > 0) return;
    const done = this.whenIdle;
    this.whenIdle = undefined;
    done();
  }

  /** The marker first if output was dropped, else the waiting output joined up to messageBytes. */
  private take(): ConsoleMessage | undefined {
    if (this.queue.length === 0) return undefined;
    if (this.unreported > 0) {
      const marker = { data: dropMarker(this.unreported), scrollback: this.queue[0].scrollback };
      this.unreported = 0;
      return marker;
    }
    const scrollback = this.queue[0].scrollback;
    const parts: Buffer[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && this.queue[0].scrollback === scrollback && bytes < this.messageBytes) {
      const head = this.queue[0];
      const room = this.messageBytes - bytes;
      if (head.data.length <= room) {
        parts.push(head.data);
        this.queue.shift();
        bytes += head.data.length;
      } else {
        parts.push(head.data.subarray(0, room));
        head.data = head.data.subarray(room);
        bytes += room;
      }
    }
    this.queued -= bytes;
    return { data: parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes), scrollback };
  }
}
