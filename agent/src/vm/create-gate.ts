// A bound on concurrent creates: a few run at once (each spawns a helper, which on a busy host is
// slow), a bounded queue waits, and beyond it a create is refused at once with RESOURCE_EXHAUSTED,
// so a burst of creates gets a clear answer instead of helpers that time out in the crowd.
import { QumraError } from "../errors.js";

export const DEFAULT_CREATES_IN_PROGRESS = 8;
export const DEFAULT_CREATES_QUEUED = 64;

export class CreateGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly maxRunning = DEFAULT_CREATES_IN_PROGRESS,
    readonly maxQueued = DEFAULT_CREATES_QUEUED,
  ) {}

  get inProgress(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `op` when a slot is free; refuses at once when the queue is full. */
  async run<T>(op: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxRunning) {
      if (this.waiting.length >= this.maxQueued) {
        throw new QumraError("resource-exhausted", `too many creates in progress (${this.running} running, ${this.waiting.length} waiting); retry later`);
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.running++;
    try {
      return await op();
    } finally {
      // The slot passes straight to the next waiter, so the running count stays exact.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
