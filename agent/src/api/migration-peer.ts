// The source agent's side of the wire to a migration's destination: one ReceiveMigration stream to the
// destination agent's VmService (its unix socket, or TCP with the caller's TLS credentials), as the
// MigrationChannel the VM domain drives.
import * as grpc from "@grpc/grpc-js";
import { QumraError, invalidArgument } from "../errors.js";
import { isLoopback } from "../config.js";
import { VmServiceClient, VmState, MigrationReply_Kind, type MigrationPacket, type MigrationReply, type MigrationTls } from "../gen/qumra/v1/vm.js";
import type { DisplayHint, MigrationChannel, MigrationOffer } from "../vm/migration-channel.js";
import type { PageRun } from "../vm/helper-protocol.js";
import { specToPb } from "./vm-convert.js";

/** Time the destination has to make its incoming VM, load the state, or take the VM over. */
const STEP_MS = 60_000;
/** State bytes per message. */
const STATE_PIECE = 1 << 20;
/** Pages messages (≤ 1 MiB each) sent and not yet written at the destination, at most. */
const PAGES_IN_FLIGHT = 4;

/** Checks a destination before anything is sent: "HOST:PORT" or "unix:/PATH"; plaintext TCP only on loopback. */
export function parseDestination(destination: string, tls: MigrationTls | undefined): { target: string; host: string } {
  if (destination.startsWith("unix:")) {
    const file = destination.slice(5);
    if (!file.startsWith("/")) throw invalidArgument(`destination ${destination}: a unix socket needs an absolute path (unix:/run/qumra/qumra.sock)`);
    return { target: destination, host: "localhost" };
  }
  const m = /^(\[([0-9a-fA-F:.]+)\]|[^:[\]/\s]+):(\d{1,5})$/.exec(destination);
  if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) throw invalidArgument(`destination '${destination}': expected HOST:PORT (e.g. 10.0.0.2:50051) or unix:/PATH`);
  const host = m[2] ?? m[1];
  const hasTls = Boolean(tls && (tls.caPem.length || tls.certPem.length));
  if (!hasTls && !isLoopback(host)) throw invalidArgument(`destination ${destination}: a non-loopback destination needs TLS (tls.ca_pem, tls.cert_pem and tls.key_pem: the caller's credentials there)`);
  if (tls && Boolean(tls.certPem.length) !== Boolean(tls.keyPem.length)) throw invalidArgument("tls: a client certificate needs both cert_pem and key_pem");
  return { target: destination, host };
}

function credentials(destination: string, tls: MigrationTls | undefined): grpc.ChannelCredentials {
  if (destination.startsWith("unix:") || !tls || (!tls.caPem.length && !tls.certPem.length)) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(tls.caPem.length ? Buffer.from(tls.caPem) : null, tls.keyPem.length ? Buffer.from(tls.keyPem) : null, tls.certPem.length ? Buffer.from(tls.certPem) : null);
}

/** The gRPC error of the destination as the agent's own (its code and message kept, naming it). */
function fromPeer(destination: string, err: unknown): QumraError {
  const e = err as Partial<grpc.ServiceError>;
  const kinds: Partial<Record<number, QumraError["kind"]>> = {
    [grpc.status.INVALID_ARGUMENT]: "invalid-argument",
    [grpc.status.NOT_FOUND]: "not-found",
    [grpc.status.ALREADY_EXISTS]: "already-exists",
    [grpc.status.FAILED_PRECONDITION]: "failed-precondition",
    [grpc.status.RESOURCE_EXHAUSTED]: "resource-exhausted",
    [grpc.status.PERMISSION_DENIED]: "permission-denied",
    [grpc.status.UNAUTHENTICATED]: "permission-denied",
    [grpc.status.DEADLINE_EXCEEDED]: "deadline-exceeded",
  };
  const kind = (e.code !== undefined && kinds[e.code]) || "unavailable";
  return new QumraError(kind, `destination ${destination}: ${e.details || e.message || String(err)}`, { cause: err });
}

export class MigrationPeer implements MigrationChannel {
  private readonly client: VmServiceClient;
  private call?: grpc.ClientDuplexStream<MigrationPacket, MigrationReply>;
  private readonly replies: MigrationReply[] = [];
  private waiter?: { resolve: (r: MigrationReply) => void; reject: (e: unknown) => void };
  private failure?: QumraError;
  private vmId = "";
  private pagesInFlight = 0;
  private readonly pageWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** The destination's host as given (what a wildcard SPICE address there means for a client). */
  private readonly host: string;

  constructor(
    private readonly destination: string,
    tls: MigrationTls | undefined,
    /** The VM's SPICE ticket, handed to the destination with the offer. */
    private readonly ticket?: { value: string; ttlSeconds: number },
    private readonly metadata: grpc.Metadata = new grpc.Metadata(),
  ) {
    const { target, host } = parseDestination(destination, tls);
    this.host = host;
    const options: grpc.ChannelOptions = tls?.serverName ? { "grpc.ssl_target_name_override": tls.serverName } : {};
    this.client = new VmServiceClient(target, credentials(destination, tls), options);
  }

  async offer(o: MigrationOffer): Promise<{ display?: DisplayHint }> {
    this.vmId = o.vmId;
    const call = this.client.receiveMigration(this.metadata);
    this.call = call;
    call.on("data", (r: MigrationReply) => {
      if (r.kind === MigrationReply_Kind.KIND_PAGES_WRITTEN) {
        this.pagesInFlight--;
        this.pageWaiters.shift()?.resolve();
        return;
      }
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w.resolve(r);
      } else this.replies.push(r);
    });
    call.on("error", (err) => this.fail(fromPeer(this.destination, err)));
    call.on("end", () => this.fail(new QumraError("unavailable", `destination ${this.destination} ended the migration stream`)));
    const spec = specToPb(o.spec);
    if (spec.boot?.$case === "flatImage" && o.image) spec.boot.value.image = Buffer.from(o.image);
    const ticket = { displayTicket: this.ticket?.value ?? "", displayTicketTtlS: this.ticket?.ttlSeconds ?? 0 };
    await this.write({ packet: { $case: "offer", value: { vmId: o.vmId, spec, source: o.source, migrationId: o.migrationId, running: o.running, ...ticket } } });
    const ready = await this.expect(MigrationReply_Kind.KIND_READY, "make the incoming VM");
    const d = ready.display;
    const wildcard = !d?.host || d.host === "0.0.0.0" || d.host === "::";
    return { display: d && (d.port || d.tlsPort) ? { host: wildcard ? this.host : d.host, port: d.port, tlsPort: d.tlsPort } : undefined };
  }

  async sendPages(runs: readonly PageRun[], data: Buffer): Promise<void> {
    await this.write({ packet: { $case: "pages", value: { runs: runs.map((r) => ({ gpa: BigInt(r.gpa), pages: r.pages })), data } } });
    this.pagesInFlight++;
    if (this.pagesInFlight >= PAGES_IN_FLIGHT) await new Promise<void>((resolve, reject) => this.pageWaiters.push({ resolve, reject }));
  }


  async sendState(blob: Buffer, scrollback: Buffer): Promise<{ ramCrc32: number }> {
    for (let offset = 0; offset < blob.length; offset += STATE_PIECE) {
      const data = blob.subarray(offset, offset + STATE_PIECE);
      const last = offset + data.length >= blob.length;
      await this.write({ packet: { $case: "state", value: { total: BigInt(blob.length), offset: BigInt(offset), data, console: last ? scrollback : Buffer.alloc(0) } } });
    }
    const loaded = await this.expect(MigrationReply_Kind.KIND_LOADED, "load the state");
    return { ramCrc32: loaded.ramCrc32 };
  }

  async commit(): Promise<void> {
    await this.write({ packet: { $case: "commit", value: {} } });
    await this.expect(MigrationReply_Kind.KIND_RUNNING, "take the VM over");
    this.call?.end();
  }

  /**
   * Ends the stream first (an uncommitted incoming VM is then removed there), then asks until the answer
   * is clear: gone (absent), or the destination's own VM — RUNNING (an incoming VM never runs before its
   * commit) or PAUSED "migrated from …" (the reason its commit writes). Anything else after 10 s: unknown.
   */
  async probe(): Promise<"present" | "absent" | "unknown"> {
    this.call?.cancel();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const answer = await new Promise<"present" | "absent" | undefined>((resolve) => {
        this.client.getVm({ vmId: this.vmId }, this.metadata, { deadline: Date.now() + 2_000 }, (err, vm) => {
          if (err) return resolve(err.code === grpc.status.NOT_FOUND ? "absent" : undefined);
          const own = vm.state === VmState.VM_STATE_RUNNING || (vm.state === VmState.VM_STATE_PAUSED && vm.stateReason.startsWith("migrated from"));
          resolve(own ? "present" : undefined);
        });
      });
      if (answer) return answer;
      await new Promise((r) => setTimeout(r, 200));
    }
    return "unknown";
  }

  abort(reason: string): void {
    this.failure ??= new QumraError("failed-precondition", `migration aborted: ${reason}`);
    this.call?.cancel();
    this.client.close();
  }

  close(): void {
    this.client.close();
  }

  private fail(err: QumraError): void {
    this.failure ??= err;
    for (const w of this.pageWaiters.splice(0)) w.reject(this.failure);
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
  }

  private write(packet: MigrationPacket): Promise<void> {
    const call = this.call;
    if (this.failure) return Promise.reject(this.failure);
    if (!call) return Promise.reject(new QumraError("internal", "migration stream not open"));
    return new Promise((resolve, reject) => {
      // The stream's own buffer is the bound: wait for drain before the next message.
      if (call.write(packet)) resolve();
      else {
        const onDrain = () => {
          call.off("error", onError);
          resolve();
        };
        const onError = (err: unknown) => {
          call.off("drain", onDrain);
          reject(fromPeer(this.destination, err));
        };
        call.once("drain", onDrain);
        call.once("error", onError);
      }
    });
  }

  private expect(kind: MigrationReply_Kind, what: string): Promise<MigrationReply> {
    const queued = this.replies.shift();
    const got = queued
      ? Promise.resolve(queued)
      : this.failure
        ? Promise.reject(this.failure)
        : new Promise<MigrationReply>((resolve, reject) => {
            const timer = setTimeout(() => {
              this.waiter = undefined;
              reject(new QumraError("deadline-exceeded", `destination ${this.destination} did not ${what} within ${STEP_MS / 1000} s`));
            }, STEP_MS);
            this.waiter = {
              resolve: (r) => {
                clearTimeout(timer);
                resolve(r);
              },
              reject: (e) => {
                clearTimeout(timer);
                reject(e);
              },
            };
          });
    return got.then((r) => {
      if (r.kind !== kind) throw new QumraError("internal", `destination ${this.destination} answered ${MigrationReply_Kind[r.kind] ?? r.kind} when asked to ${what}`);
      return r;
    });
  }
}
