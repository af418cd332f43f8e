// A VM's serial console on the agent side: a bounded scrollback and live fan-out to attachments, at
// most maxAttachments of them (each one's own backlog is console-backlog.ts).
import { QumraError } from "../errors.js";

export type ConsoleListener = (data: Buffer) => void;

export class ConsoleBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly listeners = new Set<ConsoleListener>();
  /** Bytes seen since the VM started (not bounded by the scrollback). */
  total = 0;

  constructor(
    private readonly capacity = 1024 * 1024,
    private readonly maxAttachments = Infinity,
  ) {}

  /** Attachments listening now. */
  get attachments(): number {
    return this.listeners.size;
  }

  /** Replaces the scrollback, e.g. with the helper's own after a re-attach. */
  reset(scrollback: Buffer): void {
    this.chunks = [];
    this.size = 0;
    this.keep(scrollback);
  }

  push(chunk: Buffer): void {
    // A copy of its own: the helper's bytes may be a slice of a larger socket read, which the
    // scrollback and every slow attachment would otherwise keep alive whole.
    const data = Buffer.from(chunk);
    this.total += data.length;
    this.keep(data);
    for (const listener of this.listeners) listener(data);
  }

  scrollback(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }

  /** Listens to new output; returns the scrollback at that instant (no byte lost or repeated between the two). */
  attach(listener: ConsoleListener): { scrollback: Buffer; detach: () => void } {
    if (this.listeners.size >= this.maxAttachments) {
      throw new QumraError(
        "resource-exhausted",
        `the console already has ${this.listeners.size} attachments, the most --max-consoles-per-vm allows; close one, or start the agent with a higher --max-consoles-per-vm`,
      );
    }
    this.listeners.add(listener);
    return { scrollback: this.scrollback(), detach: () => this.listeners.delete(listener) };
  }

  private keep(data: Buffer): void {
    if (data.length === 0) return;
    this.chunks.push(data);
    this.size += data.length;
    while (this.size > this.capacity) {
      const excess = this.size - this.capacity;
      const first = this.chunks[0];
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
    }
  }
}
