// The deadline of the client call being served, carried to every helper request made on its behalf, so
// that a helper which does not answer fails the call with a clear reason before the client gives up.
import { AsyncLocalStorage } from "node:async_hooks";

/** Default time a helper has to answer one request. */
export const HELPER_ANSWER_MS = 5000;
/** Kept back from the client's deadline, so our answer (not the client's own timeout) reaches it. */
export const DEADLINE_MARGIN_MS = 250;
/** Never wait less than this for a helper (a deadline already almost spent still gets a real answer or error). */
const MIN_WAIT_MS = 50;

const current = new AsyncLocalStorage<number>();

/** Runs fn with the client's deadline (epoch ms; Infinity = none) visible to helper requests it makes. */
export function withCallDeadline<T>(deadlineMs: number, fn: () => T): T {
  return current.run(deadlineMs, fn);
}

/** How long a helper request may wait: at most `limitMs`, and at most the call's remaining time − margin. */
export function helperWaitMs(limitMs: number): number {
  const deadline = current.getStore();
  if (deadline === undefined || !Number.isFinite(deadline)) return limitMs;
  return Math.max(MIN_WAIT_MS, Math.min(limitMs, deadline - Date.now() - DEADLINE_MARGIN_MS));
}
