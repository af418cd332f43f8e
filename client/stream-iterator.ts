// A grpc-js server stream as an async iterator, with backpressure: the stream is paused while the
// consumer has `highWater` messages unread, so a slow `for await` never makes the client buffer grow.
import * as grpc from "@grpc/grpc-js";
import { toClientError } from "./errors.js";

type Readable<T> = grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>;

export class StreamIterator<T> implements AsyncIterableIterator<T> {
  private readonly queue: T[] = [];
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  private finished = false;
  private failure: unknown;
  private cancelledByUs = false;
  private paused = false;
  private settle!: (err?: unknown) => void;

  /** `ended` settles when the stream is over (resolves on a clean end or our cancel, rejects with the typed error). */
  readonly ended: Promise<void>;

  constructor(private readonly stream: Readable<T>, private readonly method: string, private readonly highWater = 64) {
    this.ended = new Promise<void>((resolve, reject) => (this.settle = (err) => (err ? reject(err) : resolve())));
    // Nobody may be awaiting `ended`; its rejection is also delivered through next().
    this.ended.catch(() => undefined);
    stream.on("data", (item: T) => {
      if (this.finished) return;
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w.resolve({ value: item, done: false });
        return;
      }
      this.queue.push(item);
      if (this.queue.length >= this.highWater && !this.paused) {
        this.paused = true;
        stream.pause();
      }
    });
    stream.on("error", (err: grpc.ServiceError) => {
      const error = this.cancelledByUs && err.code === grpc.status.CANCELLED ? undefined : toClientError(err, method);
      this.finish(error);
      this.settle(error);
    });
    stream.on("end", () => {
      this.finish(undefined);
      this.settle();
    });
  }

  /** The stream is over (ended, failed or cancelled). */
  get done(): boolean {
    return this.finished;
  }

  private finish(error: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    const w = this.waiter;
    this.waiter = undefined;
    if (w && this.queue.length === 0) {
      if (error) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.queue.length > 0) {
      const value = this.queue.shift()!;
      if (this.paused && this.queue.length <= this.highWater / 2) {
        this.paused = false;
        this.stream.resume();
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.finished) {
      if (this.failure) {
        const err = this.failure;
        this.failure = undefined;
        return Promise.reject(err);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    if (this.waiter) return Promise.reject(new Error(`${this.method}: next() called again before the previous one settled`));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** Ends the stream (what `break` out of a for-await does). */
  return(): Promise<IteratorResult<T>> {
    this.cancel();
    return Promise.resolve({ value: undefined, done: true });
  }

  cancel(): void {
    if (this.finished) return;
    this.cancelledByUs = true;
    this.queue.length = 0;
    this.stream.cancel();
    this.finish(undefined);
    this.settle();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
