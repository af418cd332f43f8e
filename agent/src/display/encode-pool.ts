// The display work runs off the agent's event loop: a pool of worker threads (one per core by default),
// each an EncoderHost. All viewers of one VM share a lane on one worker, so their encoders, frames and
// GLZ windows stay in that worker's memory; the main thread only sends dirty-page bitmaps and receives
// the encoded bytes (transferred). A pool of size 0 runs the same host on the main thread (a yardstick
// for benchmarks, and a fallback where workers cannot start).
import os from "node:os";
import type { Worker } from "node:worker_threads";
import { startWorker } from "../worker-thread.js";
import { QumraError } from "../errors.js";
import type { Logger } from "../logger.js";
import { codecModule } from "../codec/wasm-module.js";
import { EncoderHost, type EncodeReply, type EncodeRequest } from "./encode-host.js";

/** The requests of one VM's viewers, all handled on the same worker. */
export interface EncodeLane {
  request(req: EncodeRequest): Promise<EncodeReply>;
  /** Gives the lane back; the worker forgets nothing by itself (close each viewer first). */
  release(): void;
}

interface Pending {
  resolve(reply: EncodeReply): void;
  reject(err: Error): void;
}

/** One worker (or the inline host) and the lanes pinned to it. */
class Slot {
  lanes = 0;
  private worker: Worker | undefined;
  private readonly inline: EncoderHost | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(
    threaded: boolean,
    private readonly index: number,
    private readonly log: Logger | undefined,
  ) {
    if (threaded) this.start();
    else this.inline = new EncoderHost();
  }

  request(req: EncodeRequest): Promise<EncodeReply> {
    if (this.inline) {
      const host = this.inline;
      return new Promise((resolve) => resolve(host.handle(req).reply));
    }
    if (this.closed || !this.worker) return Promise.reject(new QumraError("unavailable", "the display encoder pool is shut down"));
    const id = this.nextId++;
    const worker = this.worker;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, req });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    this.failAll(new QumraError("unavailable", "the display encoder pool is shut down"));
    await w?.terminate();
  }

  private start(): void {
    const worker = startWorker("encode-worker", import.meta.url, { workerData: { module: codecModule() }, name: `qumra-encode-${this.index}` });
    worker.unref();
    worker.on("message", (m: { id: number; reply?: EncodeReply; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.reply) p.resolve(m.reply);
      else p.reject(new QumraError("internal", `display encoding failed: ${m.error}`));
    });
    worker.on("error", (err) => this.log?.error({ err, worker: this.index }, "display encoder worker failed"));
    worker.on("exit", (code) => {
      if (this.worker !== worker) return;
      // The viewers on this worker lose their encoders (their requests fail and their streams end);
      // later viewers get a fresh worker.
      this.failAll(new QumraError("internal", `the display encoder worker stopped (exit code ${code}); reconnect to the display`));
      this.worker = undefined;
      if (!this.closed) {
        this.log?.warn({ worker: this.index, code }, "display encoder worker exited: starting another");
        this.start();
      }
    });
    this.worker = worker;
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

export class EncodePool {
  private readonly slots: Slot[];

  /** `threads` workers (0: on the main thread); default one per core. */
  constructor(
    readonly threads = os.availableParallelism(),
    log?: Logger,
  ) {
    if (!Number.isInteger(threads) || threads < 0) throw new Error(`encode pool size ${threads} is not a whole number ≥ 0`);
    this.slots = threads === 0 ? [new Slot(false, 0, log)] : Array.from({ length: threads }, (_, i) => new Slot(true, i, log));
  }

  /** A lane on the least-loaded worker, for one VM's viewers. */
  lane(): EncodeLane {
    const slot = this.slots.reduce((best, s) => (s.lanes < best.lanes ? s : best));
    slot.lanes++;
    let released = false;
    return {
      request: (req) => slot.request(req),
      release: () => {
        if (released) return;
        released = true;
        slot.lanes--;
      },
    };
  }

  /** A one-off request (a screenshot) on the least-loaded worker. */
  request(req: EncodeRequest): Promise<EncodeReply> {
    const lane = this.lane();
    return lane.request(req).finally(() => lane.release());
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.close()));
  }
}
