// A failed write to the state dir as the agent's typed error: full disks and quotas are
// RESOURCE_EXHAUSTED, read-only or failing disks UNAVAILABLE; the message names the file and the errno.
import { QumraError, type ErrorKind } from "../errors.js";

const KIND_OF_CODE: Record<string, ErrorKind> = {
  ENOSPC: "resource-exhausted",
  EDQUOT: "resource-exhausted",
  EROFS: "unavailable",
  EIO: "unavailable",
};

/** The errno code of a Node fs error ("ENOSPC"), if it has one. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

export function storageError(err: unknown, action: string, file: string): QumraError {
  if (err instanceof QumraError) return err;
  const code = errnoOf(err) ?? "EUNKNOWN";
  const why = code === "ENOSPC" || code === "EDQUOT" ? "the state dir's filesystem is full" : code === "EROFS" ? "the state dir's filesystem is read-only" : code === "EIO" ? "the state dir's disk failed" : (err as Error)?.message ?? String(err);
  return new QumraError(KIND_OF_CODE[code] ?? "internal", `could not ${action} ${file}: ${code} (${why})`, { cause: err });
}

/** A write that wrote fewer bytes than asked and then made no progress (a full disk reports ENOSPC here). */
export function shortWrite(file: string, written: number, total: number): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`short write to ${file}: ${written} of ${total} bytes`);
  err.code = "ENOSPC";
  return err;
}
