// VmService: thin handlers that validate, call the VmManager and map its typed errors to statuses.
import * as grpc from "@grpc/grpc-js";
import {
  VmEventType,
  type VmServiceServer,
  type Vm,
  type VmEvent as PbVmEvent,
  type WatchVmsRequest,
  type ConsoleInput,
  type ConsoleOutput,
  type VcpuState,
  type VmStats,
  type SnapshotProgress,
  type Snapshot as PbSnapshot,
} from "../gen/qumra/v1/vm.js";
import { invalidArgument } from "../errors.js";
import type { OnSnapshotProgress } from "../vm/manager.js";
import type { SnapshotInfo } from "../vm/snapshot-store.js";
import { ConsoleBacklog } from "../vm/console-backlog.js";
import { CONSOLE_BACKLOG_BYTES } from "../limits.js";
import { MAX_MEMORY_IO as HELPER_MAX_MEMORY_IO } from "../vm/helper-protocol.js";
import type { VmManager } from "../vm/manager.js";
import type { VmRecord } from "../vm/types.js";
import type { SpiceClientInfo } from "../spice/session.js";
import { unary, serverStream, toServiceError } from "./status.js";
import { migrationHandlers, type MigrationContext } from "./migration-handlers.js";
import { vmScopeOf } from "./caller.js";
import { selectorMatches } from "../authz/selector.js";
import { eventToPb, regsFromPb, regsToPb, specFromPb, sregsFromPb, sregsToPb, stateFromPb, syntheticEvent, vmToPb, safeNumber, specToPb } from "./vm-convert.js";

/** ReadMemory / WriteMemory bytes per call: what the helper moves in one request. */
export const MAX_MEMORY_IO = HELPER_MAX_MEMORY_IO;
const MAX_CONSOLE_INPUT = 65536;
/** A watcher whose unread events pass this many bytes is cut off rather than let memory grow. */
const MAX_WATCH_BACKLOG = 8 * 1024 * 1024;

/** `spiceClients`: a VM's connected SPICE clients (none when the agent serves no SPICE port). */
/** `migration`: this agent's name and SPICE address as a migration's destination tells its source. */
export function vmService(
  vms: VmManager,
  spiceClients: (vmId: string) => SpiceClientInfo[] = () => [],
  consoleBacklogBytes = CONSOLE_BACKLOG_BYTES,
  migration: MigrationContext = { agentName: "qumra-agent", display: () => undefined },
): VmServiceServer {
  const toPb = (r: VmRecord): Vm => vmToPb(r, spiceClients(r.vmId), vms.hang(r.vmId));

  return {
    createVm: unary(async (req) => toPb(await vms.create(req.vmId, req.requestId, specFromPb(req.spec)))),
    startVm: unary(async (req) => toPb(await vms.start(req.vmId))),
    pauseVm: unary(async (req) => toPb(await vms.pause(req.vmId))),
    resumeVm: unary(async (req) => toPb(await vms.resume(req.vmId))),
    stopVm: unary(async (req) => {
      if (req.timeoutMs > 600_000) throw invalidArgument(`timeout_ms ${req.timeoutMs} is outside 0..600000`);
      return toPb(await vms.stop(req.vmId, { force: req.force, timeoutMs: req.timeoutMs || 10_000 }));
    }),
    deleteVm: unary(async (req) => {
      await vms.delete(req.vmId, req.force);
      return {};
    }),
    getVm: unary(async (req) => toPb(vms.get(req.vmId))),
    listVms: unary(async (req, call) => {
      const scope = vmScopeOf(call);
      return { vms: vms.list(stateFromPb(req.state), req.labelSelector).filter((r) => !scope || selectorMatches(scope, r.spec.labels)).map(toPb) };
    }),

    watchVms: (call) => watchVms(vms, call),
    attachConsole: (call) => attachConsole(vms, call, consoleBacklogBytes),

    getVcpuState: unary(async (req): Promise<VcpuState> => {
      const s = await vms.getVcpu(req.vmId, req.vcpu);
      return { vcpu: req.vcpu, regs: regsToPb(s.regs), sregs: sregsToPb(s.sregs) };
    }),
    setVcpuState: unary(async (req): Promise<VcpuState> => {
      const s = await vms.setVcpu(req.vmId, req.vcpu, {
        regs: req.regs ? regsFromPb(req.regs) : undefined,
        sregs: req.sregs ? sregsFromPb(req.sregs) : undefined,
      });
      return { vcpu: req.vcpu, regs: regsToPb(s.regs), sregs: sregsToPb(s.sregs) };
    }),
    readMemory: unary(async (req) => {
      if (req.length < 1 || req.length > MAX_MEMORY_IO) throw invalidArgument(`length ${req.length} is outside 1..${MAX_MEMORY_IO}`);
      return { data: await vms.readMemory(req.vmId, safeNumber(req.address, "address"), req.length) };
    }),
    writeMemory: unary(async (req) => {
      if (req.data.length < 1 || req.data.length > MAX_MEMORY_IO) throw invalidArgument(`data is ${req.data.length} bytes: 1 to ${MAX_MEMORY_IO} per call`);
      await vms.writeMemory(req.vmId, safeNumber(req.address, "address"), req.data);
      return {};
    }),
    getVmStats: unary(async (req): Promise<VmStats> => {
      const { record, stats } = await vms.stats(req.vmId);
      const n = (v: number) => BigInt(Math.max(0, Math.round(v)));
      const big = (m: Record<string, number>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, n(v)]));
      return {
        vmId: record.vmId,
        state: vmToPb(record).state,
        uptimeMs: n(stats.uptimeMs),
        vcpus: stats.vcpus.map((v) => ({
          vcpu: v.vcpu,
          exitsTotal: n(v.exitsTotal),
          exitsIo: n(v.exitsIo),
          exitsMmio: n(v.exitsMmio),
          exitsHlt: n(v.exitsHlt),
          exitsOther: n(v.exitsOther),
          kvmStats: big(v.kvmStats),
        })),
        helperRssBytes: n(stats.helperRssBytes),
        helperCpuUserMs: n(stats.helperCpuUserMs),
        helperCpuSystemMs: n(stats.helperCpuSystemMs),
        consoleBytes: n(stats.consoleBytes),
        kvmVmStats: big(stats.kvmVmStats),
      };
    }),

    snapshotVm: serverStream(async (req, call) => {
      const progress = progressWriter(call);
      const info = await vms.snapshot(req.vmId, req.snapshotName, progress);
      call.write({ ...progress.last(), done: true, phase: "done", snapshot: snapshotToPb(info) });
    }),
    restoreVm: serverStream(async (req, call) => {
      const progress = progressWriter(call);
      const record = await vms.restore(req.vmId, req.requestId, { name: req.snapshotName, sourceVmId: req.sourceVmId || undefined, start: req.start }, progress);
      call.write({ ...progress.last(), done: true, phase: "done", vm: toPb(record) });
    }),
    listSnapshots: unary(async () => ({ snapshots: vms.listSnapshots().map(snapshotToPb) })),
    deleteSnapshot: unary(async (req) => {
      vms.deleteSnapshot(req.snapshotName);
      return {};
    }),
    ...migrationHandlers(vms, migration),
  };
}

/**
 * Progress messages of a snapshot or restore, at most one per percent (and per phase), so a large VM
 * does not flood the stream; last() is the latest numbers for the final message.
 */
function progressWriter(call: grpc.ServerWritableStream<unknown, SnapshotProgress>): OnSnapshotProgress & { last(): Pick<SnapshotProgress, "bytesDone" | "bytesTotal"> } {
  let phase = "";
  let percent = -1;
  let latest = { bytesDone: 0n, bytesTotal: 0n };
  const fn = (p: { phase: string; done: number; total: number }) => {
    latest = { bytesDone: BigInt(p.done), bytesTotal: BigInt(p.total) };
    const pc = p.total ? Math.floor((100 * p.done) / p.total) : 100;
    if (p.phase === "done" || (p.phase === phase && pc === percent) || call.cancelled || call.writableEnded) return;
    phase = p.phase;
    percent = pc;
    call.write({ ...latest, done: false, phase: p.phase, snapshot: undefined, vm: undefined });
  };
  return Object.assign(fn, { last: () => latest });
}

function snapshotToPb(info: SnapshotInfo): PbSnapshot {
  const m = info.manifest;
  return {
    name: m.name,
    sourceVmId: m.sourceVmId,
    createdAt: new Date(m.createdAt),
    spec: specToPb(m.spec),
    wasRunning: m.wasRunning,
    memoryBytes: BigInt(m.memory.bytes),
    memoryDataBytes: BigInt(m.memory.dataBytes),
    stateBytes: BigInt(m.state.bytes),
    diskBytes: BigInt(info.diskBytes),
    stateFormat: m.stateFormat,
  };
}

function watchVms(vms: VmManager, call: grpc.ServerWritableStream<WatchVmsRequest, PbVmEvent>): void {
  const req = call.request;
  const fail = (err: unknown): void => {
    call.emit("error", toServiceError(err));
  };
  const heartbeatMs = req.heartbeatMs || 15_000;
  if (heartbeatMs < 1000 || heartbeatMs > 300_000) return fail(invalidArgument(`heartbeat_ms ${req.heartbeatMs} is outside 1000..300000 (0 means 15000)`));
  const from = Number(req.fromSequence);
  // A caller limited to some labels sees only those VMs; a VM leaves its view with its DELETED event.
  const scope = vmScopeOf(call);
  const visible = (vmId: string) => {
    if (!scope) return true;
    try {
      return selectorMatches(scope, vms.get(vmId).spec.labels);
    } catch {
      return seen.has(vmId);
    }
  };
  const seen = new Set<string>();
  const matches = (vmId: string) => {
    if (!vmId) return true;
    if ((req.vmId && vmId !== req.vmId) || !visible(vmId)) return false;
    if (scope) seen.add(vmId);
    return true;
  };
  const log = vms.events;

  const send = (event: PbVmEvent) => {
    if (call.writableLength > MAX_WATCH_BACKLOG) {
      stop();
      call.emit("error", {
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: `this watcher reads too slowly: more than ${MAX_WATCH_BACKLOG} bytes of events are waiting; reconnect with from_sequence`,
      });
      return;
    }
    call.write(event);
  };
  const instance = log.instanceId;
  const snapshots = () => {
    for (const record of vms.list(undefined, {})) if (matches(record.vmId)) send(syntheticEvent(VmEventType.VM_EVENT_TYPE_SNAPSHOT, log.lastSequence, instance, record, vms.hang(record.vmId)));
  };

  try {
    if (req.vmId && (from === 0 || (req.instanceId && req.instanceId !== instance))) vms.get(req.vmId);
  } catch (err) {
    return fail(err);
  }
  // Everything below runs in one tick: no event can slip between the replay and the subscription.
  if (from === 0) snapshots();
  else {
    // A number from another instance, beyond the last one, or older than the ring cannot be served.
    const missed = req.instanceId && req.instanceId !== instance ? undefined : log.since(from);
    if (missed === undefined) {
      send(syntheticEvent(VmEventType.VM_EVENT_TYPE_RESYNC, log.lastSequence, instance));
      snapshots();
    } else for (const e of missed) if (matches(e.vmId)) send(eventToPb(e, instance));
  }
  const unsubscribe = log.subscribe((e) => {
    if (matches(e.vmId)) send(eventToPb(e, instance));
  });
  const heartbeat = setInterval(() => send(syntheticEvent(VmEventType.VM_EVENT_TYPE_HEARTBEAT, log.lastSequence, instance)), heartbeatMs);
  function stop() {
    unsubscribe();
    clearInterval(heartbeat);
  }
  call.on("cancelled", stop);
  call.on("close", stop);
  call.on("error", stop);
}

/** How a console or display stream of a VM that migrated away ends: UNAVAILABLE naming the destination. */
export function migratedStatus(vmId: string, destination: string): Partial<grpc.ServiceError> {
  const metadata = new grpc.Metadata();
  metadata.set("qumra-migrated-to", destination);
  return { code: grpc.status.UNAVAILABLE, details: `VM '${vmId}' migrated to ${destination}; connect to that agent`, metadata };
}

function attachConsole(vms: VmManager, call: grpc.ServerDuplexStream<ConsoleInput, ConsoleOutput>, backlogBytes: number): void {
  let detach: (() => void) | undefined;
  let vmId = "";
  // Output waits in a bounded backlog of this attachment's own; a reader that falls behind loses the
  // oldest of it (with a marker in its place), never the agent's memory.
  const backlog = new ConsoleBacklog((message, taken) => {
    if (call.writableEnded || call.destroyed) return;
    call.write({ data: message.data, scrollback: message.scrollback }, taken);
  }, { capacity: backlogBytes });
  const release = () => {
    detach?.();
    detach = undefined;
    backlog.close();
  };
  const end = () => {
    detach?.();
    detach = undefined;
    // The output still waiting goes first (a reader that never reads keeps only this bounded backlog).
    backlog.finish(() => {
      if (call.writableEnded) return;
      // A VM that moved away: the status says where it went, so the client can attach there.
      const movedTo = vmId ? vms.migratedTo(vmId) : undefined;
      if (movedTo) call.emit("error", migratedStatus(vmId, movedTo));
      else call.end();
    });
  };
  const fail = (err: unknown) => {
    release();
    call.emit("error", toServiceError(err));
  };
  call.on("data", (input: ConsoleInput) => {
    try {
      if (input.data.length > MAX_CONSOLE_INPUT) throw invalidArgument(`console input of ${input.data.length} bytes: at most ${MAX_CONSOLE_INPUT} per message`);
      if (!vmId) {
        if (!input.vmId) throw invalidArgument("the first ConsoleInput must name the VM (vm_id)");
        vmId = input.vmId;
        const attachment = vms.attachConsole(vmId, (data) => backlog.push(data), end);
        detach = attachment.detach;
        backlog.push(attachment.scrollback, true);
      }
      if (input.data.length > 0) vms.consoleWrite(vmId, Buffer.from(input.data)).catch(fail);
    } catch (err) {
      fail(err);
    }
  });
  call.on("end", end);
  call.on("cancelled", release);
  call.on("error", release);
  call.on("close", release);
}
