// HostService: thin handlers over HostInfo.
import type * as grpc from "@grpc/grpc-js";
import type { HostServiceServer, Host, HostStats, WatchHostStatsRequest } from "../gen/qumra/v1/host.js";
import type { HostInfo } from "../host/host-facts.js";
import { invalidArgument } from "../errors.js";
import { unary, serverStream } from "./status.js";
import { vmScopeOf } from "./caller.js";
import type { Selector } from "../authz/selector.js";
import type { AdmissionReport } from "../vm/admission.js";
import type { CgroupStatus } from "../vm/cgroups.js";

export interface AgentIdentity {
  version: string;
  startedAt: Date;
  listen: string[];
  stateDir: string;
  /** This agent process's id (EventLog.instanceId): WatchVms sequences are only comparable under it. */
  instanceId: string;
  /** Degraded mode and quarantined records (VmManager.health). */
  health: () => { degraded: string; orphans: readonly { name: string; problem: string; quarantinedAs: string; helperPids: number[] }[] };
}

/** How many VMs this agent knows and runs, of those with `scope`'s labels when given. */
export type VmCounter = (scope?: Selector) => { total: number; running: number };

/** What the agent admits and whether it uses cgroups (Host.admission, Host.cgroups), in domain units. */
export type HostLimitsReport = () => {
  admission: AdmissionReport & { vmOverheadBytes: number; createsInProgress: number; createsQueued: number };
  cgroups: CgroupStatus;
};

export function hostService(host: HostInfo, agent: AgentIdentity, vmCounts: VmCounter, limits?: HostLimitsReport): HostServiceServer {
  return {
    getHost: unary(async (): Promise<Host> => {
      const facts = await host.facts();
      const now = limits?.();
      const a = now?.admission;
      return {
        admission: a && {
          maxVms: a.maxVms,
          memoryOvercommit: a.memoryOvercommit,
          memoryReserveBytes: BigInt(a.memoryReserveBytes),
          memoryCapacityBytes: BigInt(a.memoryCapacityBytes),
          memoryAdmittedBytes: BigInt(a.memoryAdmittedBytes),
          vmsDefined: a.vmsDefined,
          vmOverheadBytes: BigInt(a.vmOverheadBytes),
          createsInProgress: a.createsInProgress,
          createsQueued: a.createsQueued,
        },
        cgroups: now?.cgroups,
        hostname: facts.hostname,
        kernelRelease: facts.kernelRelease,
        os: facts.os,
        arch: facts.arch,
        cpu: facts.cpu,
        memory: facts.memory,
        numaNodes: facts.numaNodes,
        kvm: { ...facts.kvm, capabilities: facts.kvm.capabilities.map((c) => ({ ...c, value: BigInt(c.value) })) },
        agent: {
          version: agent.version,
          startedAt: agent.startedAt,
          nodeVersion: process.version,
          listen: agent.listen,
          stateDir: agent.stateDir,
          instanceId: agent.instanceId,
          degraded: agent.health().degraded,
          quarantined: agent.health().orphans.map((o) => ({ name: o.name, problem: o.problem, quarantinedAs: o.quarantinedAs, helperPids: o.helperPids })),
        },
      };
    }),

    watchHostStats: serverStream(async (request: WatchHostStatsRequest, call: grpc.ServerWritableStream<WatchHostStatsRequest, HostStats>) => {
      const intervalMs = request.intervalMs === 0 ? 1000 : request.intervalMs;
      if (intervalMs < 100 || intervalMs > 3_600_000) {
        throw invalidArgument(`interval_ms ${request.intervalMs} is outside 100..3600000 (0 means 1000)`);
      }
      for (let sent = 0; request.count === 0 || sent < request.count; sent++) {
        if (sent > 0 && !(await sleepUnlessCancelled(intervalMs, call))) return;
        const sample = await host.sample();
        const vms = vmCounts(vmScopeOf(call));
        const message: HostStats = {
          time: sample.time,
          cpuPercent: sample.cpuPercent,
          perCpuPercent: sample.perCpuPercent,
          memoryTotalBytes: sample.memoryTotalBytes,
          memoryAvailableBytes: sample.memoryAvailableBytes,
          load1: sample.load[0],
          load5: sample.load[1],
          load15: sample.load[2],
          vmsTotal: vms.total,
          vmsRunning: vms.running,
        };
        if (call.cancelled) return;
        call.write(message);
      }
    }),
  };
}

/** Waits ms; resolves false early if the call is cancelled (client gone or deadline passed). */
function sleepUnlessCancelled(ms: number, call: grpc.ServerWritableStream<unknown, unknown>): Promise<boolean> {
  return new Promise((resolve) => {
    if (call.cancelled) return resolve(false);
    const timer = setTimeout(() => {
      call.off("cancelled", onCancel);
      resolve(true);
    }, ms);
    const onCancel = () => {
      clearTimeout(timer);
      resolve(false);
    };
    call.once("cancelled", onCancel);
  });
}
