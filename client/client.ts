// The SDK's client: one channel to one agent, typed methods over its four services. Each method
// says whether it is safe to repeat, and how a repeat recognises that an earlier attempt did the work.
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import {
  CreateVmRequest,
  ListVmsRequest,
  VmServiceClient,
  VmState,
  MigrationPhase,
  type DeepPartial,
  type MigrationProgress,
  type ReadMemoryResponse,
  type SetVcpuStateRequest,
  type Snapshot,
  type SnapshotProgress,
  type VcpuState,
  type Vm,
  type VmSpec,
  type VmStats,
} from "../agent/src/gen/qumra/v1/vm.js";
import { HostServiceClient, type Host, type HostStats } from "../agent/src/gen/qumra/v1/host.js";
import {
  DisplayServiceClient,
  type DisplayConnection,
  type ScreenshotRequest,
  type ScreenshotResponse,
  type SendInputRequest,
  type SetDisplayTicketRequest,
  type SetDisplayTicketResponse,
} from "../agent/src/gen/qumra/v1/display.js";
import { AuditServiceClient, type AuditRecord, type ReadAuditRequest } from "../agent/src/gen/qumra/v1/audit.js";
import {
  channelOptionsFor,
  credentialsFor,
  DEFAULT_DEADLINE_MS,
  DEFAULT_RETRY,
  targetFor,
  type ConnectOptions,
  type RetryOptions,
  type TlsOptions,
  type PathOrBuffer,
} from "./connection.js";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError, type QumraClientError } from "./errors.js";
import { callOnce, isTransient, isUnavailable, newRequestId, withRetries, type CallOptions, type UnaryMethod } from "./unary.js";
import { VmWatch, type WatchOptions } from "./watch.js";
import { attachConsole, type ConsoleSession } from "./console.js";
import { streamDecodedDisplay, streamDisplay, type DecodedFrame, type DisplayRequest, type DisplayStream } from "./display.js";
import { StreamIterator } from "./stream-iterator.js";
import { callOptionsFor, lastProgress, type ProgressOptions } from "./progress-stream.js";

export interface CreateVmInput {
  vmId: string;
  spec: DeepPartial<VmSpec>;
  /** The idempotency key; generated when absent. Every retry of this call reuses it. */
  requestId?: string;
}

export interface MigrateVmInput {
  vmId: string;
  /** The destination agent: "HOST:PORT" or "unix:/PATH". */
  destination: string;
  /** Your credentials at the destination (files or PEM bytes); without them TCP is plaintext (loopback only). */
  tls?: TlsOptions;
  /** The longest pause accepted (default 300 ms). */
  maxDowntimeMs?: number;
  /** Cap on the copy rate in bytes per second (default: none). */
  maxBandwidth?: number;
  /** Pre-copy rounds at most (default 30). */
  maxRounds?: number;
}

export interface RestoreVmInput {
  snapshotName: string;
  /** The new VM's id; the snapshot's own VM's id once that VM is deleted. */
  vmId: string;
  /** When set, the agent checks that the snapshot was taken of this VM. */
  sourceVmId?: string;
  /** Resume it (RUNNING); otherwise it stays PAUSED at the saved point. */
  start?: boolean;
  /** The idempotency key (generated when absent): repeating the call with it returns the same VM. */
  requestId?: string;
}

export interface ListVmsFilter {
  state?: VmState;
  labels?: Record<string, string>;
}

/** How a method may be repeated after a failed attempt. */
type Retryable = (err: QumraClientError) => boolean;
const NEVER: Retryable = () => false;

export class QumraClient {
  /** The generated grpc-js clients on this connection, for anything the typed methods do not cover. */
  readonly raw: { vm: VmServiceClient; host: HostServiceClient; display: DisplayServiceClient; audit: AuditServiceClient };
  /** The gRPC target, e.g. "127.0.0.1:50051" or "unix:/run/qumra/qumra.sock". */
  readonly target: string;
  private readonly deadlineMs: number;
  private readonly retry: RetryOptions;

  constructor(options: ConnectOptions = {}) {
    this.target = targetFor(options);
    this.deadlineMs = options.defaultDeadlineMs ?? DEFAULT_DEADLINE_MS;
    if (!(this.deadlineMs > 0)) throw new RangeError(`connect: defaultDeadlineMs ${options.defaultDeadlineMs} must be above 0`);
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    const vm = new VmServiceClient(this.target, credentialsFor(options), channelOptionsFor(options));
    // One channel (one connection) for all four services.
    const shared = { channelOverride: vm.getChannel() };
    const insecure = grpc.credentials.createInsecure();
    this.raw = {
      vm,
      host: new HostServiceClient(this.target, insecure, shared),
      display: new DisplayServiceClient(this.target, insecure, shared),
      audit: new AuditServiceClient(this.target, insecure, shared),
    };
  }

  /** Closes the connection; streams still open end with CancelledError or UnavailableError. */
  close(): void {
    this.raw.vm.close();
  }

  /**
   * Runs a unary method with this client's deadline and retries. `attempt` may turn a repeat's
   * error into success (the earlier attempt did the work).
   */
  private async call<Req, Res>(
    client: grpc.Client,
    method: UnaryMethod<Req, Res>,
    name: string,
    request: Req,
    options: CallOptions,
    retryable: Retryable,
    onError?: (err: QumraClientError, attempt: number) => Promise<Res>,
  ): Promise<Res> {
    const deadlineMs = options.deadlineMs ?? this.deadlineMs;
    if (!(deadlineMs > 0)) throw new RangeError(`${name}: deadlineMs ${options.deadlineMs} must be above 0`);
    const requestId = options.requestId ?? newRequestId();
    const retry = options.retry === false ? { ...this.retry, retries: 0 } : { ...this.retry, ...options.retry };
    const bound = method.bind(client) as UnaryMethod<Req, Res>;
    return withRetries(async (n) => {
      try {
        return await callOnce(bound, name, request, deadlineMs, requestId, options.signal);
      } catch (err) {
        if (onError) return onError(err as QumraClientError, n);
        throw err;
      }
    }, retryable, retry, options.signal);
  }

  // --- HostService -------------------------------------------------------------------------------

  getHost(options: CallOptions = {}): Promise<Host> {
    return this.call(this.raw.host, this.raw.host.getHost, "HostService/GetHost", {}, options, isTransient);
  }

  /** Host samples every intervalMs (default 1000), `count` of them (0: until cancelled). */
  watchHostStats(request: { intervalMs?: number; count?: number } = {}): StreamIterator<HostStats> {
    return new StreamIterator(this.raw.host.watchHostStats({ intervalMs: request.intervalMs ?? 0, count: request.count ?? 0 }), "HostService/WatchHostStats");
  }

  // --- VmService: lifecycle ---------------------------------------------------------------------

  /**
   * Creates a VM. Safe to retry: every attempt carries the same request_id, and the agent answers a
   * repeat with the VM the first attempt created (after its own restart too: the id is in the record).
   * ALREADY_EXISTS is success when the existing VM carries our request id, an AlreadyExistsError otherwise.
   */
  createVm(input: CreateVmInput, options: CallOptions = {}): Promise<Vm> {
    const requestId = input.requestId ?? options.requestId ?? newRequestId();
    const request = CreateVmRequest.fromPartial({ vmId: input.vmId, requestId, spec: input.spec });
    return this.call(this.raw.vm, this.raw.vm.createVm, "VmService/CreateVm", request, { ...options, requestId }, isTransient, async (err) => {
      if (!(err instanceof AlreadyExistsError)) throw err;
      const vm = await this.getVm(input.vmId, { ...options, requestId }).catch(() => undefined);
      if (vm?.requestId === requestId) return vm;
      throw err;
    });
  }

  /** Starts a CREATED VM. A repeat that finds it already RUNNING (our earlier attempt) is success. */
  startVm(vmId: string, options: CallOptions = {}): Promise<Vm> {
    return this.transition(this.raw.vm.startVm, "VmService/StartVm", vmId, [VmState.VM_STATE_RUNNING], options);
  }

  pauseVm(vmId: string, options: CallOptions = {}): Promise<Vm> {
    return this.transition(this.raw.vm.pauseVm, "VmService/PauseVm", vmId, [VmState.VM_STATE_PAUSED], options);
  }

  resumeVm(vmId: string, options: CallOptions = {}): Promise<Vm> {
    return this.transition(this.raw.vm.resumeVm, "VmService/ResumeVm", vmId, [VmState.VM_STATE_RUNNING], options);
  }

  /** Stops a VM; a stopped one answers at once, so repeating is harmless. */
  stopVm(vmId: string, stop: { force?: boolean; timeoutMs?: number } = {}, options: CallOptions = {}): Promise<Vm> {
    return this.call(this.raw.vm, this.raw.vm.stopVm, "VmService/StopVm", { vmId, force: Boolean(stop.force), timeoutMs: stop.timeoutMs ?? 0 }, options, isTransient);
  }

  /** Deletes a VM. A repeat that answers NOT_FOUND means an earlier attempt deleted it: success. */
  async deleteVm(vmId: string, del: { force?: boolean } = {}, options: CallOptions = {}): Promise<void> {
    await this.call(this.raw.vm, this.raw.vm.deleteVm, "VmService/DeleteVm", { vmId, force: Boolean(del.force) }, options, isTransient, async (err, attempt) => {
      if (attempt > 0 && err instanceof NotFoundError) return {};
      throw err;
    });
  }

  /** Start, pause, resume: repeated on failure to connect; a repeat refused because the VM is already where we wanted it is success. */
  private transition(method: UnaryMethod<{ vmId: string }, Vm>, name: string, vmId: string, target: VmState[], options: CallOptions): Promise<Vm> {
    return this.call(this.raw.vm, method, name, { vmId }, options, isTransient, async (err, attempt) => {
      if (attempt === 0 || !(err instanceof FailedPreconditionError)) throw err;
      const vm = await this.getVm(vmId, options);
      if (target.includes(vm.state)) return vm;
      throw err;
    });
  }

  // --- VmService: reads -------------------------------------------------------------------------

  getVm(vmId: string, options: CallOptions = {}): Promise<Vm> {
    return this.call(this.raw.vm, this.raw.vm.getVm, "VmService/GetVm", { vmId }, options, isTransient);
  }

  async listVms(filter: ListVmsFilter = {}, options: CallOptions = {}): Promise<Vm[]> {
    const request = ListVmsRequest.fromPartial({ state: filter.state ?? VmState.VM_STATE_UNSPECIFIED, labelSelector: filter.labels ?? {} });
    return (await this.call(this.raw.vm, this.raw.vm.listVms, "VmService/ListVms", request, options, isTransient)).vms;
  }

  getVmStats(vmId: string, options: CallOptions = {}): Promise<VmStats> {
    return this.call(this.raw.vm, this.raw.vm.getVmStats, "VmService/GetVmStats", { vmId }, options, isTransient);
  }

  getVcpuState(vmId: string, vcpu = 0, options: CallOptions = {}): Promise<VcpuState> {
    return this.call(this.raw.vm, this.raw.vm.getVcpuState, "VmService/GetVcpuState", { vmId, vcpu }, options, isTransient);
  }

  async readMemory(vmId: string, address: bigint | number, length: number, options: CallOptions = {}): Promise<Buffer> {
    const r: ReadMemoryResponse = await this.call(this.raw.vm, this.raw.vm.readMemory, "VmService/ReadMemory", { vmId, address: BigInt(address), length }, options, isTransient);
    return Buffer.from(r.data);
  }

  // --- VmService: writes that are not repeated (the guest may have acted on the first) -------------

  setVcpuState(request: SetVcpuStateRequest, options: CallOptions = {}): Promise<VcpuState> {
    return this.call(this.raw.vm, this.raw.vm.setVcpuState, "VmService/SetVcpuState", request, options, NEVER);
  }

  async writeMemory(vmId: string, address: bigint | number, data: Uint8Array, options: CallOptions = {}): Promise<void> {
    await this.call(this.raw.vm, this.raw.vm.writeMemory, "VmService/WriteMemory", { vmId, address: BigInt(address), data: Buffer.from(data) }, options, NEVER);
  }

  // --- VmService: streams -----------------------------------------------------------------------

  /** Every VM event, resumed across disconnects and agent restarts (client/watch.ts). */
  watchVms(options: WatchOptions = {}): VmWatch {
    return new VmWatch(this.raw.vm, options);
  }

  attachConsole(vmId: string): ConsoleSession {
    return attachConsole(this.raw.vm, vmId);
  }

  // --- VmService: snapshots -------------------------------------------------------------------

  /**
   * Saves a RUNNING (paused briefly) or PAUSED VM as snapshot `name`; resolves with the snapshot.
   * Not repeated: a repeat would find the name taken (ALREADY_EXISTS), and listSnapshots says whether it was.
   */
  async snapshotVm(vmId: string, name: string, options: ProgressOptions<SnapshotProgress> = {}): Promise<Snapshot> {
    const method = "VmService/SnapshotVm";
    const { metadata, call } = callOptionsFor(options, method);
    const last = await lastProgress(() => this.raw.vm.snapshotVm({ vmId, snapshotName: name }, metadata, call), method, (p) => p.done && p.snapshot !== undefined, options);
    return last.snapshot!;
  }

  /** Makes a VM from a snapshot; resolves with it. Repeating with the same requestId returns the same VM. */
  async restoreVm(input: RestoreVmInput, options: ProgressOptions<SnapshotProgress> = {}): Promise<Vm> {
    const method = "VmService/RestoreVm";
    const requestId = input.requestId ?? options.requestId ?? newRequestId();
    const { metadata, call } = callOptionsFor({ ...options, requestId }, method);
    const request = { vmId: input.vmId, requestId, sourceVmId: input.sourceVmId ?? "", snapshotName: input.snapshotName, start: Boolean(input.start) };
    const last = await lastProgress(() => this.raw.vm.restoreVm(request, metadata, call), method, (p) => p.done && p.vm !== undefined, options);
    return last.vm!;
  }

  /**
   * Moves a RUNNING or PAUSED VM to another agent while it runs; resolves with the COMPLETED progress
   * (downtime, bytes sent, the RAM checksum both sides computed). Aborting `signal` before the switch
   * cancels it and the VM stays. Not repeated: after a failure GetVm on both agents says where the VM is.
   */
  async migrateVm(input: MigrateVmInput, options: ProgressOptions<MigrationProgress> = {}): Promise<MigrationProgress> {
    const method = "VmService/MigrateVm";
    const { metadata, call } = callOptionsFor(options, method);
    const t = input.tls;
    const pem = (v: PathOrBuffer | undefined) => (v === undefined ? Buffer.alloc(0) : typeof v === "string" ? readFileSync(v) : v);
    const request = {
      vmId: input.vmId,
      destination: input.destination,
      tls: t ? { caPem: pem(t.ca), certPem: pem(t.cert), keyPem: pem(t.key), serverName: t.serverName ?? "" } : undefined,
      maxDowntimeMs: input.maxDowntimeMs ?? 0,
      maxBandwidthBytesPerSecond: BigInt(input.maxBandwidth ?? 0),
      maxRounds: input.maxRounds ?? 0,
    };
    return lastProgress(() => this.raw.vm.migrateVm(request, metadata, call), method, (p) => p.phase === MigrationPhase.MIGRATION_PHASE_COMPLETED, options);
  }

  /** Cancels a migration that has not reached its switch (call it on the source agent). */
  async cancelMigration(vmId: string, options: CallOptions = {}): Promise<void> {
    await this.call(this.raw.vm, this.raw.vm.cancelMigration, "VmService/CancelMigration", { vmId }, options, isTransient);
  }

  async listSnapshots(options: CallOptions = {}): Promise<Snapshot[]> {
    return (await this.call(this.raw.vm, this.raw.vm.listSnapshots, "VmService/ListSnapshots", {}, options, isTransient)).snapshots;
  }

  /** Deletes a snapshot. A repeat that answers NOT_FOUND means an earlier attempt deleted it: success. */
  async deleteSnapshot(name: string, options: CallOptions = {}): Promise<void> {
    await this.call(this.raw.vm, this.raw.vm.deleteSnapshot, "VmService/DeleteSnapshot", { snapshotName: name }, options, isTransient, async (err, attempt) => {
      if (attempt > 0 && err instanceof NotFoundError) return {};
      throw err;
    });
  }

  // --- DisplayService ---------------------------------------------------------------------------

  /** The encoded updates as the agent sends them. */
  streamDisplay(request: DisplayRequest): DisplayStream<import("../agent/src/gen/qumra/v1/display.js").DisplayUpdate> {
    return streamDisplay(this.raw.display, request);
  }

  /** The updates decoded into a local screen. */
  streamDecodedDisplay(request: DisplayRequest): DisplayStream<DecodedFrame> {
    return streamDecodedDisplay(this.raw.display, request);
  }

  screenshot(vmId: string, format: ScreenshotRequest["format"] = 0, options: CallOptions = {}): Promise<ScreenshotResponse> {
    return this.call(this.raw.display, this.raw.display.screenshot, "DisplayService/Screenshot", { vmId, format }, options, isTransient);
  }

  /** Input is never repeated: a key pressed twice is typed twice. */
  async sendInput(request: SendInputRequest, options: CallOptions = {}): Promise<void> {
    await this.call(this.raw.display, this.raw.display.sendInput, "DisplayService/SendInput", request, options, NEVER);
  }

  /** Setting the same ticket again is harmless: repeated only when the call did not get through. */
  setDisplayTicket(request: SetDisplayTicketRequest, options: CallOptions = {}): Promise<SetDisplayTicketResponse> {
    return this.call(this.raw.display, this.raw.display.setDisplayTicket, "DisplayService/SetDisplayTicket", request, options, isUnavailable);
  }

  getDisplayConnection(vmId: string, options: CallOptions = {}): Promise<DisplayConnection> {
    return this.call(this.raw.display, this.raw.display.getDisplayConnection, "DisplayService/GetDisplayConnection", { vmId }, options, isTransient);
  }

  // --- AuditService -----------------------------------------------------------------------------

  readAudit(request: Partial<ReadAuditRequest> = {}): StreamIterator<AuditRecord> {
    return new StreamIterator(this.raw.audit.readAudit({ vmId: "", follow: false, tail: 0, ...request }), "AuditService/ReadAudit");
  }
}

/** A client of one agent (see ConnectOptions). Nothing is dialled until the first call. */
export function connect(options: ConnectOptions = {}): QumraClient {
  return new QumraClient(options);
}
