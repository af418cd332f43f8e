// WatchVms as an async iterable that outlives its connection: on a disconnect, an idle stream or an
// agent restart it reconnects with backoff and resumes after the last sequence number it delivered
// (with that number's agent instance). When the agent cannot serve that number — it restarted, or the
// events are no longer kept — it answers RESYNC then snapshots, and the watch yields a `resync` item
// first: the consumer must reconcile from the snapshots that follow. Nothing is skipped silently.
import * as grpc from "@grpc/grpc-js";
import { setTimeout as sleep } from "node:timers/promises";
import { VmEventType, type VmEvent, type VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { UnavailableError, type QumraClientError, toClientError } from "./errors.js";
import { StreamIterator } from "./stream-iterator.js";
import { backoffDelay } from "./unary.js";
import type { RetryOptions } from "./connection.js";

const METHOD = "VmService/WatchVms";

export interface WatchOptions {
  /** Only this VM's events (default: every VM the caller may see). */
  vmId?: string;
  /** Resume after this sequence number (0 or absent: start with snapshots of every VM). */
  fromSequence?: bigint | number;
  /** The agent instance fromSequence came from (VmEvent.instanceId); another instance's numbers start with RESYNC. */
  instanceId?: string;
  /** Heartbeat period the agent is asked for, 1000..300000 ms (default 15000). A stream silent for twice that is presumed dead and reopened. */
  heartbeatMs?: number;
  /** Also yield heartbeats (default: only used to advance the position and detect a dead stream). */
  heartbeats?: boolean;
  /** Reconnect backoff (default 100 ms doubling to 5 s) and how many reconnects in a row before giving up (default: never). */
  reconnect?: Partial<RetryOptions>;
  /** Ends the watch (as close() does). */
  signal?: AbortSignal;
}

export type WatchItem =
  /** A VM event: SNAPSHOT, CREATED, STATE_CHANGED, GUEST_RESET, DELETED, NOTICE, DISPLAY_CLIENT_*. */
  | { kind: "event"; event: VmEvent }
  /**
   * The agent could not continue after `fromSequence` (a new agent process, or events no longer kept):
   * every VM's snapshot follows. Reconcile: a VM you knew that gets no snapshot is gone.
   */
  | { kind: "resync"; instanceId: string; previousInstanceId: string; fromSequence: bigint; sequence: bigint }
  /** The stream broke; the watch reconnects in `retryInMs` (attempt counts reconnects in a row). */
  | { kind: "disconnected"; error: QumraClientError; attempt: number; retryInMs: number }
  | { kind: "heartbeat"; sequence: bigint; instanceId: string };

/** Errors after which reopening the same watch cannot help: bad arguments, no such VM, not allowed. */
const FINAL = new Set<grpc.status>([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNAUTHENTICATED,
  grpc.status.UNIMPLEMENTED,
  grpc.status.FAILED_PRECONDITION,
]);

export class VmWatch implements AsyncIterable<WatchItem> {
  private seq: bigint;
  private instance: string;
  private readonly abort = new AbortController();
  private current: StreamIterator<VmEvent> | undefined;
  private started = false;
  private readonly reconnect: RetryOptions;

  constructor(private readonly client: VmServiceClient, private readonly options: WatchOptions = {}) {
    if (options.fromSequence !== undefined && BigInt(options.fromSequence) < 0n) throw new RangeError(`watchVms: fromSequence ${options.fromSequence} is negative`);
    this.seq = BigInt(options.fromSequence ?? 0);
    this.instance = options.instanceId ?? "";
    this.reconnect = { retries: Infinity, backoffMs: 100, maxBackoffMs: 5_000, ...options.reconnect };
    options.signal?.addEventListener("abort", () => this.close(), { once: true });
  }

  /** Where a new watch would resume: the last sequence delivered and its agent instance. */
  get position(): { sequence: bigint; instanceId: string } {
    return { sequence: this.seq, instanceId: this.instance };
  }

  /** Ends the watch: a pending next() finishes with done. */
  close(): void {
    this.abort.abort();
    this.current?.cancel();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchItem> {
    if (this.started) throw new Error("watchVms: a watch can be iterated once; open another for a second reader");
    this.started = true;
    return this.run();
  }

  private open(): StreamIterator<VmEvent> {
    const stream = this.client.watchVms({
      vmId: this.options.vmId ?? "",
      fromSequence: this.seq,
      heartbeatMs: this.options.heartbeatMs ?? 0,
      instanceId: this.instance,
    });
    return new StreamIterator(stream, METHOD);
  }

  private async *run(): AsyncGenerator<WatchItem> {
    const heartbeatMs = this.options.heartbeatMs || 15_000;
    let failures = 0;
    let connectedBefore = false;
    while (!this.abort.signal.aborted) {
      const it = (this.current = this.open());
      let idle: NodeJS.Timeout | undefined;
      let idleError: QumraClientError | undefined;
      // A half-open connection (a host that vanished) sends nothing, not even an error.
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => {
          idleError = new UnavailableError(grpc.status.UNAVAILABLE, `no event or heartbeat for ${2 * heartbeatMs} ms; reopening the watch`, METHOD);
          it.cancel();
        }, 2 * heartbeatMs + 2_000);
      };
      let error: QumraClientError | undefined;
      let first = true;
      arm();
      try {
        for await (const e of it) {
          arm();
          failures = 0;
          const item = this.take(e, first && connectedBefore);
          first = false;
          for (const i of item) yield i;
        }
        error = idleError ?? (this.abort.signal.aborted ? undefined : new UnavailableError(grpc.status.UNAVAILABLE, "the agent ended the watch (shutting down?)", METHOD));
      } catch (err) {
        error = toClientError(err, METHOD);
      } finally {
        clearTimeout(idle);
      }
      connectedBefore = true;
      if (this.abort.signal.aborted || !error) return;
      if (FINAL.has(error.code) || failures >= this.reconnect.retries) throw error;
      const retryInMs = backoffDelay(failures, this.reconnect);
      failures++;
      yield { kind: "disconnected", error, attempt: failures, retryInMs };
      try {
        await sleep(retryInMs, undefined, { signal: this.abort.signal });
      } catch {
        return;
      }
    }
  }

  /** What one message from the agent means to the consumer; advances the position. */
  private take(e: VmEvent, firstAfterReconnect: boolean): WatchItem[] {
    const out: WatchItem[] = [];
    if (e.type === VmEventType.VM_EVENT_TYPE_RESYNC) {
      out.push({ kind: "resync", instanceId: e.instanceId, previousInstanceId: this.instance, fromSequence: this.seq, sequence: e.sequence });
      this.instance = e.instanceId;
      this.seq = e.sequence;
      return out;
    }
    if (firstAfterReconnect && e.type === VmEventType.VM_EVENT_TYPE_SNAPSHOT) {
      // Resumed from 0 (nothing numbered was delivered yet): the agent sends snapshots without RESYNC,
      // but to the consumer this is the same: the state starts over.
      out.push({ kind: "resync", instanceId: e.instanceId, previousInstanceId: this.instance, fromSequence: this.seq, sequence: e.sequence });
    }
    if (e.instanceId) this.instance = e.instanceId;
    // Snapshots and heartbeats carry the latest number: every event up to it has been sent on this stream.
    if (e.sequence > this.seq) this.seq = e.sequence;
    if (e.type === VmEventType.VM_EVENT_TYPE_HEARTBEAT) {
      if (this.options.heartbeats) out.push({ kind: "heartbeat", sequence: e.sequence, instanceId: e.instanceId });
      return out;
    }
    out.push({ kind: "event", event: e });
    return out;
  }
}
