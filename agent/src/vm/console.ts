// A VM's serial console on the agent side: a bounded scrollback and live fan-out to attachments, at
// most maxAttachments of them (each one's own backlog is console-backlog.ts).
import { QumraError } from "../errors.js";
import { ByteQueue } from "./byte-queue.js";

export type ConsoleListener = (data: Buffer) => void;

export class ConsoleBuffer {
  // Copied into blocks of its own: the helper's bytes are slices of larger socket reads.
  private readonly kept = new ByteQueue();
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
    this.kept.clear();
    this.keep(scrollback);
  }

  push(data: Buffer): void {
    this.total += data.length;
    this.keep(data);
    for (const listener of this.listeners) listener(data);
  }

  scrollback(): Buffer {
    return this.kept.concat();
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
    const tail = data.length > this.capacity ? data.subarray(data.length - this.capacity) : data;
    this.kept.append(tail);
    if (this.kept.size > this.capacity) this.kept.dropFront(this.kept.size - this.capacity);
  }
}
