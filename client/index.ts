// qumra/client: the SDK for controllers (import { connect } from "qumra/client"). Node only (grpc-js);
// client/frame-decoder.ts stays the browser-safe piece.
export { connect, QumraClient, type CreateVmInput, type RestoreVmInput, type MigrateVmInput, type ListVmsFilter } from "./client.js";
export type { ProgressOptions } from "./progress-stream.js";
export type { ConnectOptions, TlsOptions, RetryOptions, PathOrBuffer } from "./connection.js";
export type { CallOptions } from "./unary.js";
export { VmWatch, type WatchOptions, type WatchItem } from "./watch.js";
export type { ConsoleSession, ConsoleChunk } from "./console.js";
export type { DecodedFrame, DisplayRequest, DisplayStream } from "./display.js";
export { StreamIterator } from "./stream-iterator.js";
export {
  QumraClientError,
  CancelledError,
  InvalidArgumentError,
  DeadlineExceededError,
  NotFoundError,
  AlreadyExistsError,
  PermissionDeniedError,
  UnauthenticatedError,
  ResourceExhaustedError,
  FailedPreconditionError,
  AbortedError,
  OutOfRangeError,
  UnimplementedError,
  InternalError,
  UnavailableError,
  toClientError,
} from "./errors.js";
export { FrameDecoder } from "./frame-decoder.js";

// The generated message types and enums (ts-proto, from proto/qumra/v1/*.proto).
export {
  VmState,
  VmEventType,
  CpuMode,
  vmStateToJSON,
  vmEventTypeToJSON,
  type Vm,
  type VmSpec,
  type VmEvent,
  type VmStats,
  type VmHealth,
  type VmSandbox,
  type VcpuState,
  type Regs,
  type Sregs,
  type CreateVmRequest,
  type ListVmsRequest,
  type WatchVmsRequest,
  type SetVcpuStateRequest,
  type ConsoleOutput,
  type Snapshot,
  type SnapshotProgress,
  MigrationPhase,
  type MigrationProgress,
  type DeepPartial,
} from "../agent/src/gen/qumra/v1/vm.js";
export type { Host, HostStats, Admission, Agent as AgentInfo } from "../agent/src/gen/qumra/v1/host.js";
export {
  Codec,
  ImageCompression,
  ScreenshotFormat,
  TicketExpiry,
  type DisplayUpdate,
  type EncodedRect,
  type StreamDisplayRequest,
  type ScreenshotResponse,
  type SendInputRequest,
  type InputEvent,
  type SetDisplayTicketRequest,
  type DisplayConnection,
} from "../agent/src/gen/qumra/v1/display.js";
export type { AuditRecord, ReadAuditRequest } from "../agent/src/gen/qumra/v1/audit.js";
export { status as GrpcStatus } from "@grpc/grpc-js";
