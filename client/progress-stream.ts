// A server stream of progress messages (SnapshotVm, RestoreVm) as one promise: each message goes to
// `onProgress`, the promise settles with the last one (the one marked done) or the typed error.
import * as grpc from "@grpc/grpc-js";
import { toClientError } from "./errors.js";
import { StreamIterator } from "./stream-iterator.js";

export interface ProgressOptions<P> {
  /** Every progress message, in order (the last one included). */
  onProgress?: (progress: P) => void;
  /** The whole stream's deadline in ms (default: none; a snapshot of a large VM takes as long as its disk). */
  deadlineMs?: number;
  /** Sent as x-request-id (the agent's audit trail records it). */
  requestId?: string;
  /** Cancels the call: the promise rejects with CancelledError. */
  signal?: AbortSignal;
}

export function callOptionsFor(options: { deadlineMs?: number; requestId?: string }, name: string): { metadata: grpc.Metadata; call: Partial<grpc.CallOptions> } {
  if (options.deadlineMs !== undefined && !(options.deadlineMs > 0)) throw new RangeError(`${name}: deadlineMs ${options.deadlineMs} must be above 0`);
  const metadata = new grpc.Metadata();
  if (options.requestId) metadata.set("x-request-id", options.requestId);
  return { metadata, call: options.deadlineMs ? { deadline: Date.now() + options.deadlineMs } : {} };
}

/** Starts the stream and reads it to its end; rejects if it ends without a message for which `isLast` holds. */
export async function lastProgress<P>(start: () => grpc.ClientReadableStream<P>, name: string, isLast: (p: P) => boolean, options: ProgressOptions<P>): Promise<P> {
  if (options.signal?.aborted) throw toClientError({ code: grpc.status.CANCELLED, details: "cancelled by the caller before it was sent" }, name);
  const stream = start();
  const items = new StreamIterator(stream, name);
  const abort = () => stream.cancel();
  options.signal?.addEventListener("abort", abort, { once: true });
  let last: P | undefined;
  try {
    // Not items.cancel(): a caller's abort must surface as CancelledError, not as a quiet end.
    for await (const p of items) {
      last = p;
      options.onProgress?.(p);
    }
  } finally {
    options.signal?.removeEventListener("abort", abort);
  }
  if (last === undefined || !isLast(last)) throw toClientError({ code: grpc.status.INTERNAL, details: "the agent ended the stream before its last progress message" }, name);
  return last;
}
