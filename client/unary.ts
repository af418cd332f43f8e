// One unary call (deadline, x-request-id, cancellation, typed error) and the retry loop around the
// calls that are safe to repeat. Which calls those are, and how a repeat is recognised as done, is
// decided per method in client.ts; this file only runs attempts.
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { toClientError, type QumraClientError } from "./errors.js";
import type { RetryOptions } from "./connection.js";

export interface CallOptions {
  /** This attempt's deadline in ms (default: the client's defaultDeadlineMs). Each retry gets a fresh one. */
  deadlineMs?: number;
  /** Sent as x-request-id (the agent's audit trail records it); for CreateVm also its request_id. */
  requestId?: string;
  /** Retries for this call (false: none); only calls that are safe to repeat are ever retried. */
  retry?: Partial<RetryOptions> | false;
  /** Cancels the call (and its retries): the promise rejects with CancelledError. */
  signal?: AbortSignal;
}

export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/** One attempt: resolves with the response or rejects with the typed error. */
export function callOnce<Req, Res>(method: UnaryMethod<Req, Res>, name: string, request: Req, deadlineMs: number, requestId: string, signal?: AbortSignal): Promise<Res> {
  const metadata = new grpc.Metadata();
  metadata.set("x-request-id", requestId);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(toClientError({ code: grpc.status.CANCELLED, details: "cancelled by the caller before it was sent" }, name));
    const call = method(request, metadata, { deadline: Date.now() + deadlineMs }, (err, response) => {
      signal?.removeEventListener("abort", cancel);
      if (err) reject(toClientError(err, name));
      else resolve(response);
    });
    function cancel() {
      call.cancel();
    }
    signal?.addEventListener("abort", cancel, { once: true });
  });
}

/** A new request id for a call that was given none. */
export const newRequestId = (): string => randomUUID();

/** The pause before retry `n` (0-based): backoffMs doubling to maxBackoffMs, ±20% so a fleet does not retry in step. */
export function backoffDelay(n: number, retry: RetryOptions): number {
  const base = Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** n);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * Runs attempt(0), attempt(1), … until one succeeds, the error is not `retryable`, or the retries are
 * spent; rejects with the last error. `attempt` gets its index so a repeat can tell that an earlier
 * attempt may have done the work.
 */
export async function withRetries<T>(attempt: (n: number) => Promise<T>, retryable: (err: QumraClientError) => boolean, retry: RetryOptions, signal?: AbortSignal): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const e = err as QumraClientError;
      if (n >= retry.retries || !retryable(e) || signal?.aborted) throw e;
      try {
        await sleep(backoffDelay(n, retry), undefined, { signal });
      } catch {
        throw e;
      }
    }
  }
}

/** UNAVAILABLE: the call did not get through (or the agent could not serve it now). */
export const isUnavailable = (e: QumraClientError): boolean => e.code === grpc.status.UNAVAILABLE;
/** UNAVAILABLE or DEADLINE_EXCEEDED: for calls whose repeat is harmless. */
export const isTransient = (e: QumraClientError): boolean => e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED;
