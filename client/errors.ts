// Errors of the client SDK: one class per gRPC status family, each carrying the status code, the
// agent's message and the RPC, so a controller branches on `instanceof`, never on message text.
import * as grpc from "@grpc/grpc-js";

export class QumraClientError extends Error {
  constructor(
    /** The gRPC status number (grpc.status). */
    readonly code: grpc.status,
    /** The agent's message: what went wrong and what to do about it. */
    readonly details: string,
    /** The RPC, e.g. "VmService/CreateVm". */
    readonly method: string,
    options?: { cause?: unknown },
  ) {
    super(`${method}: ${grpc.status[code] ?? code}: ${details}`, options);
    this.name = new.target.name;
  }

  /** The status name, e.g. "NOT_FOUND". */
  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

export class CancelledError extends QumraClientError {}
export class InvalidArgumentError extends QumraClientError {}
export class DeadlineExceededError extends QumraClientError {}
export class NotFoundError extends QumraClientError {}
export class AlreadyExistsError extends QumraClientError {}
export class PermissionDeniedError extends QumraClientError {}
/** No credentials the agent accepts (a TLS client certificate it does not know). */
export class UnauthenticatedError extends PermissionDeniedError {}
export class ResourceExhaustedError extends QumraClientError {}
export class FailedPreconditionError extends QumraClientError {}
export class AbortedError extends QumraClientError {}
export class OutOfRangeError extends QumraClientError {}
export class UnimplementedError extends QumraClientError {}
/** UNKNOWN, INTERNAL and DATA_LOSS: the agent (or the transport) failed in a way the caller cannot fix. */
export class InternalError extends QumraClientError {}
/** The agent cannot be reached or cannot serve the call now; retrying later may succeed. */
export class UnavailableError extends QumraClientError {}

type ErrorClass = new (code: grpc.status, details: string, method: string, options?: { cause?: unknown }) => QumraClientError;

const CLASSES: Partial<Record<grpc.status, ErrorClass>> = {
  [grpc.status.CANCELLED]: CancelledError,
  [grpc.status.UNKNOWN]: InternalError,
  [grpc.status.INVALID_ARGUMENT]: InvalidArgumentError,
  [grpc.status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [grpc.status.NOT_FOUND]: NotFoundError,
  [grpc.status.ALREADY_EXISTS]: AlreadyExistsError,
  [grpc.status.PERMISSION_DENIED]: PermissionDeniedError,
  [grpc.status.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [grpc.status.FAILED_PRECONDITION]: FailedPreconditionError,
  [grpc.status.ABORTED]: AbortedError,
  [grpc.status.OUT_OF_RANGE]: OutOfRangeError,
  [grpc.status.UNIMPLEMENTED]: UnimplementedError,
  [grpc.status.INTERNAL]: InternalError,
  [grpc.status.UNAVAILABLE]: UnavailableError,
  [grpc.status.DATA_LOSS]: InternalError,
  [grpc.status.UNAUTHENTICATED]: UnauthenticatedError,
};

/** The typed error for a grpc-js error (or anything else thrown while calling `method`). */
export function toClientError(err: unknown, method: string): QumraClientError {
  if (err instanceof QumraClientError) return err;
  const e = err as Partial<grpc.ServiceError> | undefined;
  if (e && typeof e.code === "number" && grpc.status[e.code] !== undefined) {
    const Class = CLASSES[e.code as grpc.status] ?? InternalError;
    // grpc-js appends a resolver note to connection failures; it says nothing the code does not.
    const details = (e.details ?? e.message ?? "").replace(/\.? Resolution note: *$/, "");
    return new Class(e.code, details, method, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(grpc.status.UNKNOWN, message, method, { cause: err });
}
