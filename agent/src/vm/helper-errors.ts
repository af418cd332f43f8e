// The helper's errors: its error replies, and the client's own conditions (timeouts, closed sockets).
import type { ErrorCode } from "../gen/helper-abi.js";

/** The helper's error names (its error replies), plus the client's own conditions. */
export type HelperErrorCode = keyof typeof ErrorCode | "CONNECTION_CLOSED" | "CONNECT_FAILED" | "PROTOCOL" | "SPAWN_FAILED" | "NOT_FOUND";

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
