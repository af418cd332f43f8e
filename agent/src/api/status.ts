// The api/ edge: maps the agent's typed errors to gRPC status codes and wraps handlers.
import * as grpc from "@grpc/grpc-js";
import { QumraError, type ErrorKind } from "../errors.js";
import { withCallDeadline } from "../vm/call-deadline.js";

const CODES: Record<ErrorKind, grpc.status> = {
  "invalid-argument": grpc.status.INVALID_ARGUMENT,
  "not-found": grpc.status.NOT_FOUND,
  "already-exists": grpc.status.ALREADY_EXISTS,
  "failed-precondition": grpc.status.FAILED_PRECONDITION,
  "resource-exhausted": grpc.status.RESOURCE_EXHAUSTED,
  "out-of-range": grpc.status.OUT_OF_RANGE,
  "permission-denied": grpc.status.PERMISSION_DENIED,
  unavailable: grpc.status.UNAVAILABLE,
  "deadline-exceeded": grpc.status.DEADLINE_EXCEEDED,
  unimplemented: grpc.status.UNIMPLEMENTED,
  internal: grpc.status.INTERNAL,
};

/** A gRPC error for any thrown value; unknown errors become INTERNAL with their message. */
export function toServiceError(err: unknown): Partial<grpc.ServiceError> {
  if (err instanceof QumraError) return { code: CODES[err.kind], details: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: grpc.status.INTERNAL, details: `internal error: ${message}` };
}

/** The call's deadline in epoch ms (Infinity when the client set none). */
function deadlineOf(call: { getDeadline(): grpc.Deadline }): number {
  const d = call.getDeadline();
  return d instanceof Date ? d.getTime() : d;
}

/**
 * Wraps an async unary handler: its result or typed error reaches the client with the right status.
 * The call's deadline bounds every helper request the handler makes (vm/call-deadline.ts).
 */
export function unary<Req, Res>(
  handler: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    withCallDeadline(deadlineOf(call), () => handler(call.request, call)).then(
      (response) => callback(null, response),
      (err) => callback(toServiceError(err) as grpc.ServiceError),
    );
  };
}

/** Wraps an async server-streaming handler: it writes to the call; a thrown error ends the call with its status. */
export function serverStream<Req, Res>(
  handler: (request: Req, call: grpc.ServerWritableStream<Req, Res>) => Promise<void>,
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    handler(call.request, call).then(
      () => {
        if (!call.cancelled && !call.writableEnded) call.end();
      },
      (err) => {
        if (!call.cancelled) call.emit("error", toServiceError(err));
      },
    );
  };
}

/** Handlers answering UNIMPLEMENTED, naming what is missing, for every method of a service definition. */
export function unimplementedService(
  definition: grpc.ServiceDefinition,
  why: string,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const rpc = method.path.split("/").slice(1).join(".");
    const status = { code: grpc.status.UNIMPLEMENTED, details: `${rpc} is not implemented yet: ${why}` };
    impl[name] = ((call: { emit(event: string, value: unknown): void }, callback?: grpc.sendUnaryData<unknown>) => {
      if (callback) callback(status as grpc.ServiceError);
      else call.emit("error", status);
    }) as grpc.UntypedHandleCall;
  }
  return impl;
}
