// The helper's errors, and what they mean to the rest of the agent: vm/ translates every HelperError
// into a QumraError before it leaves vm/, so api/ maps only the agent's own typed errors.
import { QumraError, type ErrorKind } from "../errors.js";
import type { ErrorCode } from "../gen/helper-abi.js";

/** The helper's error names (its error replies), plus the client's own conditions. */
export type HelperErrorCode = keyof typeof ErrorCode | "CONNECTION_CLOSED" | "CONNECT_FAILED" | "PROTOCOL" | "SPAWN_FAILED" | "NOT_FOUND" | "BUSY";

export class HelperError extends Error {
  override readonly name = "HelperError";
  constructor(
    readonly code: HelperErrorCode,
    message: string,
    /** The numeric code from the helper's error reply, when there was one. */
    readonly remoteCode?: number,
  ) {
    super(message);
  }
}

/** What a helper's refusal means for the caller (the helper checks its own bounds and states too). */
const KINDS: Partial<Record<HelperErrorCode, ErrorKind>> = {
  INVALID_ARGUMENT: "invalid-argument",
  BAD_MESSAGE: "invalid-argument",
  TOO_LARGE: "invalid-argument",
  WRONG_STATE: "failed-precondition",
  // The helper refused the agent's secret: the VM's secret file is missing or not the one the helper has.
  AUTH: "failed-precondition",
  OUT_OF_RANGE: "out-of-range",
  // The agent's own bound on requests in flight to one helper (helper-client.ts).
  BUSY: "resource-exhausted",
  TIMEOUT: "deadline-exceeded",
  CONNECTION_CLOSED: "unavailable",
  CONNECT_FAILED: "unavailable",
};

export function helperErrorKind(code: HelperErrorCode): ErrorKind {
  return KINDS[code] ?? "internal";
}

/** A HelperError as the agent's typed error ("the VM's helper answered: …", or the timeout as it is); any other value is returned as it is. */
export function fromHelperError(err: unknown): unknown {
  if (!(err instanceof HelperError)) return err;
  // A timeout is the absence of an answer; its message names the helper and how long it had.
  const message = err.code === "TIMEOUT" ? err.message : `the VM's helper answered: ${err.message}`;
  return new QumraError(helperErrorKind(err.code), message, { cause: err });
}

/** Runs one exchange with the helper; a HelperError it throws comes out as a QumraError. */
export async function askHelper<T>(exchange: () => Promise<T>): Promise<T> {
  try {
    return await exchange();
  } catch (err) {
    throw fromHelperError(err);
  }
}
