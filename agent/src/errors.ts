// Typed errors of the agent's domain. Only api/ maps them to gRPC status codes.

export type ErrorKind =
  | "invalid-argument"
  | "not-found"
  | "already-exists"
  | "failed-precondition"
  | "resource-exhausted"
  | "out-of-range"
  | "permission-denied"
  | "unavailable"
  | "deadline-exceeded"
  | "unimplemented"
  | "internal";

export class QumraError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "QumraError";
  }
}

export const invalidArgument = (message: string) => new QumraError("invalid-argument", message);
export const notFound = (message: string) => new QumraError("not-found", message);
export const failedPrecondition = (message: string) => new QumraError("failed-precondition", message);
export const unimplemented = (message: string) => new QumraError("unimplemented", message);
