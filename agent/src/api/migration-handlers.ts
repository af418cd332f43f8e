// VmService's migration RPCs: MigrateVm and CancelMigration on the source, ReceiveMigration on the
// destination. Thin: validation and conversion here, the protocol in vm/migration-*.ts.
import * as grpc from "@grpc/grpc-js";
import {
  MigrationPhase as PbPhase,
  MigrationReply_Kind,
  type MigrateVmRequest,
  type MigrationPacket,
  type MigrationProgress as PbProgress,
  type MigrationReply,
} from "../gen/qumra/v1/vm.js";
import { invalidArgument } from "../errors.js";
import type { VmManager } from "../vm/manager.js";
import type { DisplayHint, MigrationProgress } from "../vm/migration-channel.js";
import type { IncomingMigration } from "../vm/migration-target.js";
import { MigrationPeer } from "./migration-peer.js";
import { serverStream, toServiceError, unary } from "./status.js";
import { specFromPb } from "./vm-convert.js";

export interface MigrationContext {
  /** This agent as its migration peers name it (host name). */
  agentName: string;
  /** Where this agent serves VM displays over SPICE, if it does. */
  display: () => DisplayHint | undefined;
  /** A VM's live SPICE ticket (for the destination), and setting one (an arriving VM's). */
  ticket?: {
    get(vmId: string): { value: string; ttlSeconds: number } | undefined;
    set(vmId: string, value: string, ttlSeconds: number): void;
  };
}

const PHASES: Record<MigrationProgress["phase"], PbPhase> = {
  preparing: PbPhase.MIGRATION_PHASE_PREPARING,
  precopy: PbPhase.MIGRATION_PHASE_PRECOPY,
  "stop-and-copy": PbPhase.MIGRATION_PHASE_STOP_AND_COPY,
  completed: PbPhase.MIGRATION_PHASE_COMPLETED,
};

function progressToPb(p: MigrationProgress, destination: string): PbProgress {
  return {
    phase: PHASES[p.phase],
    round: p.round,
    bytesSent: BigInt(p.bytesSent),
    memoryBytes: BigInt(p.memoryBytes),
    dirtyBytes: BigInt(p.dirtyBytes),
    dirtyBytesPerSecond: BigInt(p.dirtyBytesPerSecond),
    transferBytesPerSecond: BigInt(p.transferBytesPerSecond),
    expectedDowntimeMs: Math.min(p.expectedDowntimeMs, 0xffff_ffff),
    downtimeMs: p.downtimeMs,
    totalMs: p.totalMs,
    destination,
    destinationDisplay: p.display ? { host: p.display.host, port: p.display.port, tlsPort: p.display.tlsPort } : undefined,
    ramCrc32: p.ramCrc32,
    downtimePartsMs: p.downtimePartsMs ?? {},
  };
}

function optionsOf(req: MigrateVmRequest): { maxDowntimeMs: number; maxBandwidth: number; maxRounds: number } {
  const maxDowntimeMs = req.maxDowntimeMs || 300;
  if (maxDowntimeMs > 60_000) throw invalidArgument(`max_downtime_ms ${req.maxDowntimeMs}: at most 60000 (0 means 300)`);
  const maxRounds = req.maxRounds || 30;
  if (maxRounds > 1000) throw invalidArgument(`max_rounds ${req.maxRounds}: at most 1000 (0 means 30)`);
  const maxBandwidth = Number(req.maxBandwidthBytesPerSecond);
  if (maxBandwidth !== 0 && maxBandwidth < 1 << 20) throw invalidArgument(`max_bandwidth_bytes_per_second ${maxBandwidth}: at least 1048576 (1 MiB/s), or 0 for no cap`);
  return { maxDowntimeMs, maxBandwidth, maxRounds };
}

export function migrationHandlers(vms: VmManager, ctx: MigrationContext) {
  return {
    migrateVm: serverStream<MigrateVmRequest, PbProgress>(async (req, call) => {
      if (!req.destination) throw invalidArgument("destination is missing: HOST:PORT or unix:/PATH of the destination agent");
      const opts = optionsOf(req);
      const peer = new MigrationPeer(req.destination, req.tls, ctx.ticket?.get(req.vmId));
      // A caller that goes away before the switch cancels the migration.
      const onCancel = () => {
        try {
          vms.cancelMigration(req.vmId);
        } catch {
          /* not migrating any more, or at its switch */
        }
      };
      call.on("cancelled", onCancel);
      try {
        const done = await vms.migrate(req.vmId, req.destination, peer, opts, (p) => {
          if (p.phase !== "completed" && !call.cancelled && !call.writableEnded) call.write(progressToPb(p, req.destination));
        });
        if (!call.cancelled) call.write(progressToPb(done, req.destination));
      } finally {
        call.off("cancelled", onCancel);
        peer.close();
      }
    }),

    cancelMigration: unary(async (req: { vmId: string }) => {
      vms.cancelMigration(req.vmId);
      return {};
    }),

    receiveMigration: (call: grpc.ServerDuplexStream<MigrationPacket, MigrationReply>) => receive(vms, ctx, call),
  };
}

/** One incoming migration: packets are handled one at a time, in order (the stream is paused meanwhile). */
function receive(vms: VmManager, ctx: MigrationContext, call: grpc.ServerDuplexStream<MigrationPacket, MigrationReply>): void {
  let incoming: IncomingMigration | undefined;
  let finished = false;
  let chain: Promise<void> = Promise.resolve();
  const finish = (reason: string, err?: unknown) => {
    if (finished) return;
    finished = true;
    void incoming?.end(reason);
    if (err !== undefined && !call.cancelled) call.emit("error", toServiceError(err));
  };
  const handle = async (p: MigrationPacket): Promise<void> => {
    const packet = p.packet;
    if (!packet) throw invalidArgument("a migration packet with nothing in it");
    if (packet.$case === "offer") {
      if (incoming) throw invalidArgument("a second offer on one migration stream");
      const o = packet.value;
      if (!o.migrationId || o.migrationId.length > 64) throw invalidArgument("offer.migration_id: 1 to 64 characters");
      incoming = await vms.receiveMigration({ vmId: o.vmId, spec: specFromPb(o.spec), running: o.running, migrationId: o.migrationId, source: o.source.slice(0, 255) || "another agent" });
      if (finished) return void incoming.end("the source went away while the VM was made");
      if (o.displayTicket && o.displayTicketTtlS > 0) {
        try {
          ctx.ticket?.set(o.vmId, o.displayTicket, o.displayTicketTtlS);
        } catch {
          /* a ticket this agent refuses (length): its clients will need a new one */
        }
      }
      call.write({ kind: MigrationReply_Kind.KIND_READY, ramCrc32: 0, display: ctx.display() });
      return;
    }
    if (!incoming) throw invalidArgument(`a ${packet.$case} packet before the offer`);
    switch (packet.$case) {
      case "pages": {
        const runs = packet.value.runs.map((r) => ({ gpa: Number(r.gpa), pages: r.pages }));
        await incoming.pages(runs, packet.value.data);
        call.write({ kind: MigrationReply_Kind.KIND_PAGES_WRITTEN, ramCrc32: 0, display: undefined });
        return;
      }
      case "state": {
        const s = packet.value;
        const crc = await incoming.stateChunk(Number(s.total), Number(s.offset), s.data, s.console);
        if (crc !== undefined) call.write({ kind: MigrationReply_Kind.KIND_LOADED, ramCrc32: crc, display: undefined });
        return;
      }
      case "commit":
        await incoming.commit();
        finished = true;
        call.write({ kind: MigrationReply_Kind.KIND_RUNNING, ramCrc32: 0, display: undefined });
        call.end();
        return;
    }
  };
  call.on("data", (p: MigrationPacket) => {
    call.pause();
    chain = chain.then(async () => {
      if (finished) return;
      try {
        await handle(p);
      } catch (err) {
        finish(`refused: ${(err as Error).message}`, err);
        return;
      }
      if (!finished) call.resume();
    });
  });
  call.on("end", () => void chain.then(() => finish("the source ended the stream before the switch", invalidArgument("the migration stream ended before the commit"))));
  call.on("cancelled", () => finish("the source cancelled the migration"));
  call.on("error", () => finish("the migration stream failed"));
}
