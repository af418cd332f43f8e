// qumra-agent: config → logger → services → listen; graceful shutdown on SIGTERM/SIGINT.
import { mkdirSync } from "node:fs";
import { ensureRuntimeDir } from "./runtime-dir.js";
import { loadConfig, ConfigError, USAGE, type AgentConfig } from "./config.js";
import { createLogger, type Logger } from "./logger.js";
import { AgentServer } from "./api/server.js";
import { hostService } from "./api/host-service.js";
import { vmService } from "./api/vm-service.js";
import { displayService, type DisplayAccess } from "./api/display-service.js";
import { TicketBook } from "./spice/tickets.js";
import { SpiceServer } from "./spice/spice-server.js";
import { startHttp, withWebSocketPath } from "./http/agent-http.js";
import { VmManager } from "./vm/manager.js";
import { DisplayDomain, type DisplayResolver } from "./display/display-domain.js";
import { EncodePool } from "./display/encode-pool.js";
import { helperEndpoint } from "./display/helper-source.js";
import { useNodeCodecModule } from "./codec/node-codec-module.js";
import { ProcessLauncher } from "./vm/helper-link.js";
import type { HelperSandboxOptions } from "./vm/helper-process.js";
import { resolveVmmUser } from "./vm/vmm-user.js";
import { HostInfo } from "./host/host-facts.js";
import os from "node:os";
import { Admission, VM_OVERHEAD_BYTES } from "./vm/admission.js";
import { CreateGate } from "./vm/create-gate.js";
import { VmCgroups } from "./vm/cgroups.js";
import { HostServiceService } from "./gen/qumra/v1/host.js";
import { VmServiceService } from "./gen/qumra/v1/vm.js";
import { DisplayServiceService } from "./gen/qumra/v1/display.js";
import { AuditServiceService } from "./gen/qumra/v1/audit.js";
import { auditService } from "./api/audit-service.js";
import { AuditLog } from "./audit/audit-log.js";
import { VERSION } from "./version.js";
import { lockStateDir, StateLockHeld } from "./state-lock.js";
import { AgentMetrics } from "./metrics/agent-metrics.js";
import { MetricsListener } from "./metrics/metrics-server.js";
import { probeKvm } from "./host/kvm-probe.js";
import { HealthListener } from "./api/health-listener.js";
import { systemdNotifier } from "./sd-notify.js";

export interface RunningAgent {
  server: AgentServer;
  vms: VmManager;
  display: DisplayDomain;
  audit: AuditLog;
  /** The SPICE server, when --spice is set. */
  spice?: SpiceServer;
  /** The metrics, when --metrics or --http serves them. */
  metrics?: AgentMetrics;
  /** Stops serving; VMs keep running (their helpers are separate processes). */
  shutdown(graceMs: number): Promise<void>;
}

/** Parts a caller may replace (benchmarks give the display domain scripted framebuffers). */
export interface AgentParts {
  /** Where VM displays come from; default: the VMs' helpers. */
  displays?: (vms: VmManager) => DisplayResolver;
}

/** The helpers' sandbox options: the vmm user (root only) resolved, or created, once at start. */
async function helperSandbox(config: AgentConfig, logger: Logger): Promise<HelperSandboxOptions> {
  if (!config.vmmSandbox.enabled) {
    logger.warn("helpers run without their sandbox (--vmm-sandbox off)");
    return { enabled: false };
  }
  const who = await resolveVmmUser(config.vmmSandbox.user);
  logger.info(who ? { vmm_user: who.user, uid: who.uid, gid: who.gid } : { uid: process.getuid?.() }, who ? "helpers run sandboxed as the vmm user" : "helpers run sandboxed as the agent's uid (not root)");
  return who ? { enabled: true, uid: who.uid, gid: who.gid } : { enabled: true };
}

export async function runAgent(config: AgentConfig, logger: Logger, parts: AgentParts = {}): Promise<RunningAgent> {
  useNodeCodecModule();
  try {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    logger.error({ err, state_dir: config.stateDir }, "state dir cannot be made; starting degraded");
  }
  // First, before any VM, helper or socket is touched: a second agent on this state dir stops here.
  const lock = lockStateDir(config.stateDir);
  if (lock.unheld) logger.warn({ reason: lock.unheld }, "running without the state dir lock");
  try {
    return await startLocked(config, logger, parts, lock.release);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startLocked(config: AgentConfig, logger: Logger, parts: AgentParts, releaseLock: () => void): Promise<RunningAgent> {
  ensureRuntimeDir(config.runtimeDir);
  let vmsRef: VmManager | undefined;
  const startedAt = new Date();
  const audit = new AuditLog({ stateDir: config.stateDir, logger });
  const host = new HostInfo(config.vmmPath);
  const admission = new Admission(config.admission, os.totalmem());
  const createGate = new CreateGate();
  const cgroups = config.cgroups.enabled ? VmCgroups.open(config.cgroups.parent, logger) : VmCgroups.disabled("--cgroups off", logger);
  logger.info({ cgroups: cgroups.status, max_vms: config.admission.maxVms, memory_capacity_bytes: admission.capacity }, cgroups.status.enabled ? "helpers run in per-VM cgroups" : "helpers run without per-VM cgroups");
  const vms = new VmManager({
    stateDir: config.stateDir,
    runtimeDir: config.runtimeDir,
    logger,
    launcher: new ProcessLauncher(config.runtimeDir, config.vmmPath, await helperSandbox(config, logger), cgroups, config.imagesDir),
    hostLimits: () => host.limits(),
    admission,
    createGate,
    maxConsolesPerVm: config.clientLimits.maxConsolesPerVm,
    agentName: os.hostname(),
  });
  vmsRef = vms;
  const identity = { version: VERSION, startedAt, listen: [] as string[], stateDir: config.stateDir, instanceId: vms.events.instanceId, health: () => vmsRef?.health() ?? { degraded: "", orphans: [] } };
  await vms.init();
  const displays = parts.displays?.(vms) ?? ((vmId, action) => helperEndpoint(vms.displayPort(vmId, action), vmId));
  const display = new DisplayDomain(displays, new EncodePool(config.displayWorkers, logger), logger, config.clientLimits.maxViewersPerVm);
  const tickets = new TicketBook();
  const spice = config.spice
    ? new SpiceServer({
        tickets,
        display,
        logger,
        vms: {
          describe: (vmId) => {
            try {
              const { spec } = vms.get(vmId);
              return { name: spec.name, imageCompression: spec.imageCompression };
            } catch {
              return undefined;
            }
          },
          note: (vmId, type, reason) => vms.noteDisplayClient(vmId, type, reason),
        },
        options: {
          ...config.spice,
          tls: config.tls && { cert: config.tls.cert, key: config.tls.key, caCandidates: config.tls.ca ? [config.tls.ca] : [] },
        },
      })
    : undefined;
  // Served on --metrics and on --http's /metrics; with neither, RPCs are not even counted.
  const metrics = config.metrics || config.http
    ? new AgentMetrics({
        vms,
        displayTotals: (vmId) => display.totalsOf(vmId),
        host: () => {
          const a = admission.report(vms.specs());
          const health = vms.health();
          return {
            degraded: health.degraded,
            quarantined: health.orphans.length,
            admission: { maxVms: a.maxVms, memoryCapacityBytes: a.memoryCapacityBytes, memoryAdmittedBytes: a.memoryAdmittedBytes, createsInProgress: createGate.inProgress, createsQueued: createGate.queued },
            version: VERSION,
            instanceId: vms.events.instanceId,
          };
        },
        probeKvm: () => probeKvm(config.vmmPath),
      })
    : undefined;
  vms.events.subscribe((e) => {
    if (e.type === "DELETED") {
      tickets.clear(e.vmId);
      display.forget(e.vmId);
    }
    // A session ends with its VM (a display channel also sees its display end; a lone main channel does not).
    // A VM that moved: its SPICE clients switch to the destination (and are ended there after a grace).
    const movedDisplay = e.type === "MIGRATED" || e.type === "DELETED" ? vms.migratedDisplay(e.vmId) : undefined;
    if (e.type === "MIGRATED" && movedDisplay) spice?.switchVm(e.vmId, movedDisplay);
    else if (e.type === "DELETED" && movedDisplay) return;
    if (e.type === "DELETED" || (e.type === "STATE_CHANGED" && (e.state === "STOPPED" || e.state === "CRASHED"))) {
      spice?.endVm(e.vmId, `the VM is ${e.type === "DELETED" ? "deleted" : e.state.toLowerCase()}`);
    }
  });
  const displayAccess: DisplayAccess = {
    tickets,
    vm: (vmId) => ({ vmId, name: vms.get(vmId).spec.name }),
    spice: withWebSocketPath(config, () => spice?.address()),
    migratedTo: (vmId) => vms.migratedTo(vmId),
  };

  const server = new AgentServer(config, logger, [
    {
      name: "qumra.v1.HostService",
      definition: HostServiceService,
      implementation: hostService(host, identity, (scope) => vms.counts(scope), () => ({
        admission: { ...admission.report(vms.specs()), vmOverheadBytes: VM_OVERHEAD_BYTES, createsInProgress: createGate.inProgress, createsQueued: createGate.queued },
        cgroups: cgroups.status,
      })),
    },
    {
      name: "qumra.v1.VmService",
      definition: VmServiceService,
      implementation: vmService(vms, (vmId) => spice?.clientsOf(vmId) ?? [], config.clientLimits.consoleBacklogBytes, {
        agentName: os.hostname(),
        display: () => {
          const a = spice?.address();
          return a ? { host: a.host, port: a.port ?? 0, tlsPort: a.tlsPort ?? 0 } : undefined;
        },
        ticket: {
          get: (vmId) => {
            const t = tickets.status(vmId);
            return t.live && t.value && t.expiresAt ? { value: t.value, ttlSeconds: Math.max(1, Math.floor((t.expiresAt.getTime() - Date.now()) / 1000)) } : undefined;
          },
          set: (vmId, value, ttlSeconds) => void tickets.set(vmId, value, ttlSeconds, "keep"),
        },
      }),
    },
    {
      name: "qumra.v1.DisplayService",
      definition: DisplayServiceService,
      implementation: displayService(display, displayAccess),
    },
    {
      name: "qumra.v1.AuditService",
      definition: AuditServiceService,
      implementation: auditService(audit),
    },
  ], {
    audit,
    labelsOf: (vmId) => {
      try {
        return vms.get(vmId).spec.labels;
      } catch {
        return undefined;
      }
    },
    onRpc: metrics && ((path, code, seconds) => metrics.rpc.observe(path, code, seconds)),
  });
  identity.listen = await server.listen();
  const spiceAddress = await spice?.listen();
  const http = await startHttp(config, logger, spice, metrics);
  const metricsListener = config.metrics && metrics ? await MetricsListener.start({ ...config.metrics, tls: config.tls, metrics, logger }) : undefined;
  // Last: a probe that answers SERVING means every other listener is up.
  const healthListener = config.healthListen ? await HealthListener.start({ ...config.healthListen, names: server.healthNames, logger }) : undefined;
  logger.info({ listen: identity.listen, http: http?.address, metrics: metricsListener?.address, health: healthListener?.address, state_dir: config.stateDir, runtime_dir: config.runtimeDir, version: VERSION, vms: vms.counts(), display_workers: config.displayWorkers, spice: spiceAddress && { host: spiceAddress.host, port: spiceAddress.port, tls_port: spiceAddress.tlsPort } }, "qumra-agent listening");
  return {
    server,
    vms,
    display,
    audit,
    spice,
    metrics,
    async shutdown(graceMs) {
      healthListener?.notServing();
      await Promise.all([server.shutdown(graceMs), http?.close(), metricsListener?.close()]);
      await healthListener?.close();
      await spice?.close();
      await display.close();
      tickets.close();
      vms.close();
      cgroups.close();
      await audit.close();
      releaseLock();
    },
  };
}

/** qumra-agent's entry (bin/qumra-agent.js): parses flags, runs until SIGTERM or SIGINT. */
export async function main(): Promise<void> {
  let config: AgentConfig | "help";
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`qumra-agent: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (config === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const logger = createLogger(config.logLevel);
  const notifier = systemdNotifier(logger);
  // Handlers go in before listening, so a signal that comes while starting still stops cleanly.
  let stopSignal: NodeJS.Signals | undefined;
  let starting: Promise<RunningAgent | undefined> = Promise.resolve(undefined);
  const stop = (signal: NodeJS.Signals) => {
    if (stopSignal) return;
    stopSignal = signal;
    logger.info({ signal }, "shutting down");
    starting
      .then(async (agent) => {
        await notifier.stopping(`stopping on ${signal}; VMs keep running`);
        await agent?.shutdown(config.shutdownTimeoutMs);
      })
      .then(() => {
        logger.info("stopped");
        process.exit(0);
      })
      .catch(() => process.exit(1));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  const running = runAgent(config, logger);
  starting = running;
  try {
    const agent = await running;
    // Every listener is bound by now (runAgent resolves after the last one).
    if (!stopSignal) await notifier.ready(`serving ${agent.vms.counts().total} VMs on ${agent.server.addresses.join(", ")}`);
  } catch (err) {
    if (err instanceof StateLockHeld) {
      process.stderr.write(`qumra-agent: ${err.message}\n`);
      process.exit(3);
    }
    logger.fatal({ err }, "qumra-agent failed to start");
    process.stderr.write(`qumra-agent: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
