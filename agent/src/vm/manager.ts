// The VM registry: creates VMs through their helper processes, enforces the state machine, persists
// every change, supervises helpers and re-attaches to them after an agent restart.
import { createHash, randomUUID } from "node:crypto";
import { closeSync, readFileSync, readSync, readdirSync, rmSync, unlinkSync } from "node:fs";
import path from "node:path";
import type { Logger } from "../logger.js";
import { QumraError, invalidArgument, notFound, failedPrecondition } from "../errors.js";
import { ConsoleBuffer, type ConsoleListener } from "./console.js";
import { EventLog, type VmEventType } from "./event-log.js";
import { guestRamRanges, inGuestRam, validateSpec, validateVmId, type HostLimits, type SpecRequest } from "./spec.js";
import { canTransition, requireState } from "./state-machine.js";
import { VmStore, writeAtomic, type BadRecord } from "./store.js";
import { helpersUnder, killHelper, waitGone } from "./helper-scan.js";
import { errnoOf } from "./storage-error.js";
import { VM_ID } from "./spec.js";
import { HelperLink, type ControlSecret, type HelperHang, type HelperLauncher } from "./helper-link.js";
import type { HelperClient } from "./helper-client.js";
import { createSecret, readSecret } from "./control-secret.js";
import { isHelperOf } from "./helper-process.js";
import type { HelperStatus } from "./helper-protocol.js";
import { vmStateOf } from "./helper-convert.js";
import { askHelper } from "./helper-errors.js";
import { describeSandbox } from "./sandbox-status.js";
import { helperDisplayPort, type HelperConnection, type VmDisplayPort } from "./display-port.js";
import { registersFromHelper, registersToHelper } from "./registers.js";
import type { Admission } from "./admission.js";
import type { CreateGate } from "./create-gate.js";
import { SnapshotStore, gpaOfRamOffset, ramOffsetOf, validateSnapshotName, type SnapshotInfo, type SnapshotManifest } from "./snapshot-store.js";
import { missingCpuFeatures, parseStateHeader } from "./state-blob.js";
import { MAX_MEMORY_IO, STATE_FORMAT, type RamRange } from "./helper-protocol.js";
import { MigrationSource, type SourceOutcome } from "./migration-source.js";
import { IncomingMigration } from "./migration-target.js";
import type { DisplayHint, MigrationChannel, MigrationOptions, MigrationProgress, OnMigrationProgress } from "./migration-channel.js";
import { LIVE_STATES, type VmIntent, type GpRegs, type SpecialRegs, type VcpuRegs, type VmRecord, type VmSpec, type VmState, type VmStatsSnapshot } from "./types.js";

/** Progress of a snapshot or a restore: bytes moved of the bytes to move, and what is being done. */
export interface SnapshotProgress {
  phase: "state" | "memory" | "verify" | "done";
  done: number;
  total: number;
}
export type OnSnapshotProgress = (p: SnapshotProgress) => void;

/** A forced stop gives the helper this long to answer STOP and exit before signals are used. */
const FORCE_ASK_MS = 1000;
/** Between SIGTERM and SIGKILL on a forced stop. */
const FORCE_GRACE_MS = 1000;
/** An unforced stop: how long a helper that answered STOP may take to tear its VM down and exit. */
const EXIT_AFTER_STOP_MS = 10_000;

interface VmEntry {
  record: VmRecord;
  console: ConsoleBuffer;
  link?: HelperLink;
  /**
   * Why the agent cannot control this VM's helper although it runs (its control secret is missing or
   * damaged after a restart); operations fail with this reason, and only a forced stop or delete
   * ends the helper.
   */
  unreachable?: string;
  /** Set while the agent itself is stopping the helper, so its exit is not a crash. */
  stopping?: Promise<void>;
  /** Listeners of the console's end (the VM stopped). */
  consoleEnd: Set<() => void>;
  /** Serialises lifecycle operations on one VM. */
  busy: Promise<unknown>;
  /** Set while the VM migrates out: where to, whether the switch began, and how to cancel it. */
  migration?: { destination: string; committing: boolean; cancel: () => void };
}

export interface VmManagerOptions {
  stateDir: string;
  runtimeDir: string;
  logger: Logger;
  launcher: HelperLauncher;
  /** Current limits of the host (KVM max vCPUs, available memory), or why KVM cannot be used. */
  hostLimits: () => Promise<HostLimits | { unavailable: string }>;
  /** Memory and VM-count admission of creates (admission.ts); none: only the per-VM checks. */
  admission?: Admission;
  /** The bound on concurrent creates (create-gate.ts). */
  createGate?: CreateGate;
  /** Console attachments per VM (--max-consoles-per-vm; default: no cap). */
  maxConsolesPerVm?: number;
  /** This agent as a migration's peer sees it (its host name), for events and logs on both sides. */
  agentName?: string;
}

/** How many migrated-away VMs are remembered, so their late clients learn where the VM went. */
const MIGRATED_KEPT = 1024;

/** A quarantined record, and the helpers still running in its runtime dir (DeleteVm with force kills them). */
export interface OrphanRecord extends BadRecord {
  helperPids: number[];
}

/** Files a helper leaves in its runtime dir: a dir holding only these may be removed once it is dead. */
const HELPER_FILES = new Set(["control.sock", "qumra-vmm.log", "qumra-vmm.pid", "framebuffer", "helper.lock"]);

export class VmManager {
  readonly events: EventLog;
  private readonly store: VmStore;
  /** STATE_DIR/snapshots (snapshot-store.ts). */
  readonly snapshots: SnapshotStore;
  /** Why the state dir cannot be written (mutations are refused while set); empty when it can. */
  private degradedBy = "";
  private readonly orphans: OrphanRecord[] = [];
  /** Interrupted creates a degraded start could not settle: their helpers are left for the next start. */
  private readonly unsettled = new Set<string>();
  private readonly vms = new Map<string, VmEntry>();
  private readonly creating = new Map<string, { requestId: string; done: Promise<VmRecord> }>();
  /** VMs that migrated away: vm id → the destination and its SPICE address (oldest first, at most MIGRATED_KEPT). */
  private readonly migratedAway = new Map<string, { destination: string; display?: DisplayHint }>();
  private readonly log: Logger;

  constructor(private readonly options: VmManagerOptions) {
    this.store = new VmStore(options.stateDir);
    this.snapshots = new SnapshotStore(options.stateDir);
    this.events = new EventLog(options.stateDir);
    this.log = options.logger;
  }

  /**
   * Loads persisted VMs and reconciles them with the helpers that run: re-attaches to them, finishes or
   * rolls back operations a crash interrupted, stops helpers no record names, quarantines bad records,
   * removes temp files and runtime dirs of VMs that no longer exist. Never throws for the state dir:
   * a full or read-only one makes the agent degraded (reads only).
   */
  async init(): Promise<void> {
    this.degradedBy = this.probeWritable();
    if (this.degradedBy) this.log.error({ reason: this.degradedBy }, "degraded mode: the agent serves reads; mutations are refused");
    else {
      this.store.cleanTemp((file) => this.log.info({ file }, "removed a temp file left by a crash"));
      this.snapshots.cleanTemp((dir) => this.log.info({ dir }, "removed a snapshot a crash left half written"));
    }
    const records = this.store.loadAll((bad) => {
      this.log.error({ record: bad.name, problem: bad.problem, quarantined_as: bad.quarantinedAs || "(not moved: the state dir cannot be written)" }, "bad VM record quarantined");
      this.orphans.push({ ...bad, helperPids: [] });
    });
    const running = helpersUnder(this.options.runtimeDir);
    await Promise.all(records.map((record) => this.reconcile(record, running.get(this.runtimeDirOf(record.vmId)) ?? [])));
    await this.stopUnknownHelpers(running);
    this.removeLeftovers();
  }

  /** One persisted VM at start: an interrupted create or delete is finished or rolled back, else re-attached. */
  private async reconcile(record: VmRecord, pids: number[]): Promise<void> {
    const vmLog = this.vmLog(record.vmId);
    const intent = record.intent;
    if (intent?.op === "create") {
      const pid = pids[0];
      if (pid !== undefined && !this.degradedBy) {
        const entry = this.newEntry({ ...record, helperPid: pid, intent: undefined });
        try {
          const secret = { file: this.store.secretPath(record.vmId), value: await readSecret(this.store.secretPath(record.vmId)) };
          const link = await this.options.launcher.reattach(record.vmId, pid, record.controlSocket, secret, vmLog);
          this.vms.set(record.vmId, entry);
          this.adopt(entry, link);
          entry.record = { ...entry.record, sandbox: link.client.hello?.sandbox };
          this.persist(entry);
          this.emit(entry, "CREATED", "created (its create was interrupted by an agent restart and finished after it)");
          vmLog.info({ pid }, "interrupted create finished: its helper runs and was adopted");
          return;
        } catch (err) {
          this.vms.delete(record.vmId);
          entry.link?.detach();
          vmLog.warn({ err, pid }, "interrupted create: its helper cannot be adopted, so it is rolled back");
        }
      }
      if (this.degradedBy) {
        this.unsettled.add(record.vmId);
        return vmLog.warn("interrupted create left as it is: the state dir cannot be written");
      }
      await this.killAll(record.vmId, pids);
      this.rollBack(record.vmId);
      this.events.append({ type: "DELETED", vmId: record.vmId, state: "DELETED", reason: "its create was interrupted by an agent restart before its helper ran; rolled back" });
      vmLog.info("interrupted create rolled back");
      return;
    }
    if (intent?.op === "restore" && !this.degradedBy) {
      // A half-restored VM is not the snapshot's: the VM made for it goes.
      await this.killAll(record.vmId, pids);
      this.rollBack(record.vmId);
      this.events.append({ type: "DELETED", vmId: record.vmId, state: "DELETED", reason: `its restore from snapshot '${intent.snapshot ?? "?"}' was interrupted by an agent restart; rolled back` });
      vmLog.info("interrupted restore rolled back");
      return;
    }
    if (intent?.op === "migrate-in" && !this.degradedBy) {
      // Not committed: the source still has the VM (or resumes it), so this copy goes.
      await this.killAll(record.vmId, pids);
      this.rollBack(record.vmId);
      this.events.append({ type: "DELETED", vmId: record.vmId, state: "DELETED", reason: `its incoming migration from ${intent.peer ?? "?"} was interrupted by an agent restart before the switch; rolled back` });
      vmLog.info("interrupted incoming migration rolled back");
      return;
    }
    if (intent?.op === "delete" && !this.degradedBy) {
      await this.killAll(record.vmId, pids);
      this.rollBack(record.vmId);
      this.events.append({ type: "DELETED", vmId: record.vmId, state: "DELETED", reason: "deleted (its delete was interrupted by an agent restart and finished after it)" });
      vmLog.info("interrupted delete finished");
      return;
    }
    const entry = this.newEntry(record);
    this.vms.set(record.vmId, entry);
    // Never two helpers for one VM: any helper in its runtime dir that is not the record's goes.
    const strays = pids.filter((p) => p !== record.helperPid);
    if (strays.length) {
      vmLog.warn({ pids: strays }, "stray helpers in the VM's runtime dir killed");
      for (const p of strays) killHelper(p, this.runtimeDirOf(record.vmId));
    }
    // At the switch the destination may already run the VM: this copy stays as it is, paused, and says so.
    const atSwitch = intent?.op === "migrate-out" && intent.migrationPhase === "commit";
    if (intent && !atSwitch) {
      vmLog.info({ op: intent.op, since: intent.at }, "an operation was interrupted by an agent restart; the helper's state is taken as the truth");
      entry.record = { ...entry.record, intent: undefined };
      this.persist(entry);
    }
    await this.reattachOne(entry);
    if (intent?.op === "migrate-out" && entry.link) await this.settleMigrationOut(entry, intent);
    // A snapshot paused a running VM: it runs again (the half-written snapshot was removed by init()).
    if (intent?.op === "snapshot" && intent.resume && entry.record.state === "PAUSED" && entry.link) {
      try {
        await entry.link.client.resume();
        this.transition(entry, "RUNNING", `resumed: a snapshot ('${intent.snapshot ?? "?"}') interrupted by an agent restart had paused it`);
      } catch (err) {
        vmLog.error({ err }, "could not resume the VM an interrupted snapshot had paused");
      }
    }
  }

  /** Helpers under the runtime dir that belong to no VM (their create never wrote a record) are killed. */
  private async stopUnknownHelpers(running: Map<string, number[]>): Promise<void> {
    for (const [dir, pids] of running) {
      const name = path.basename(dir);
      if (this.vms.has(name) || this.unsettled.has(name)) continue;
      const orphan = this.orphans.find((o) => o.name === name);
      if (orphan) {
        // A quarantined record's helper is left running, listed, until DeleteVm with force.
        orphan.helperPids = pids;
        continue;
      }
      this.log.warn({ runtime_dir: dir, pids }, "helper with no VM record killed");
      for (const p of pids) killHelper(p, dir);
      await waitGone(pids, dir);
    }
  }

  /** Empty VM folders (a create that crashed before its record) and dead helpers' runtime dirs. */
  private removeLeftovers(): void {
    if (this.degradedBy) return;
    for (const name of this.store.emptyFolders()) {
      if (this.vms.has(name)) continue;
      this.rollBack(name);
      this.log.info({ folder: name }, "removed a VM folder without a record");
    }
    let names: string[] = [];
    try {
      names = readdirSync(this.options.runtimeDir);
    } catch {
      return;
    }
    const live = helpersUnder(this.options.runtimeDir);
    for (const name of names) {
      if (!VM_ID.test(name) || this.vms.has(name) || live.has(this.runtimeDirOf(name))) continue;
      const dir = this.runtimeDirOf(name);
      let files: string[];
      try {
        files = readdirSync(dir);
      } catch {
        continue; // not a folder
      }
      if (!files.every((f) => HELPER_FILES.has(f))) continue; // not only a helper's: not ours to remove
      rmSync(dir, { recursive: true, force: true });
      this.log.info({ runtime_dir: dir }, "removed the runtime dir of a VM that no longer exists");
    }
  }

  /** Re-attaches to a persisted VM's helper (the agent restarted while it ran). */
  private async reattachOne(entry: VmEntry): Promise<void> {
    const record = entry.record;
    if (!LIVE_STATES.includes(record.state)) return;
    const vmLog = this.vmLog(record.vmId);
    const secret = await this.secretOf(entry, vmLog);
    if (!secret) return;
    try {
      const link = await this.options.launcher.reattach(record.vmId, record.helperPid, record.controlSocket, secret, vmLog);
      this.adopt(entry, link);
      const status = await link.client.status();
      // The sandbox is asked again, not trusted from the record: it is what the helper says now.
      this.update(entry, { sandbox: status.sandbox });
      entry.console.reset(await link.client.consoleRead(1 << 20));
      const helperState = vmStateOf(status.state);
      vmLog.info({ pid: record.helperPid, state: helperState }, "re-attached to running helper");
      if (helperState !== record.state) this.transition(entry, helperState, status.reason || "state found on re-attach");
      if (helperState === "STOPPED" || helperState === "CRASHED") void this.reap(entry);
    } catch (err) {
      entry.link?.detach();
      entry.link = undefined;
      await this.cannotReattach(entry, err, vmLog);
    }
  }

  /** Degraded mode and quarantined records, for GetHost. */
  health(): { degraded: string; orphans: readonly OrphanRecord[] } {
    return { degraded: this.degradedBy, orphans: this.orphans };
  }

  /** Why the state dir cannot be written now, or "" (a small file written and removed, like every write). */
  private probeWritable(): string {
    const file = path.join(this.options.stateDir, ".write-probe");
    try {
      writeAtomic(file, "ok\n");
      unlinkSync(file);
      return "";
    } catch (err) {
      return `the state dir ${this.options.stateDir} cannot be written (${errnoOf((err as Error).cause) ?? errnoOf(err) ?? (err as Error).message})`;
    }
  }

  /** Mutations need a writable state dir; a degraded agent checks again, so freeing the disk is enough. */
  private requireWritable(action: string): void {
    if (!this.degradedBy) return;
    this.degradedBy = this.probeWritable();
    if (this.degradedBy) throw failedPrecondition(`cannot ${action}: the agent is in degraded mode, serving reads only, because ${this.degradedBy}; free or remount it (no restart needed)`);
    this.log.info("the state dir can be written again: degraded mode ended");
  }

  private runtimeDirOf(vmId: string): string {
    return path.join(path.resolve(this.options.runtimeDir), vmId);
  }

  /** SIGKILLs every verified helper of the VM's runtime dir and waits for them to go. */
  private async killAll(vmId: string, pids: number[]): Promise<void> {
    const dir = this.runtimeDirOf(vmId);
    for (const p of pids) killHelper(p, dir);
    await waitGone(pids, dir);
  }

  /** Removes a VM's state folder and runtime dir (best effort: what cannot go is cleaned at the next start). */
  private rollBack(vmId: string): void {
    try {
      this.store.remove(vmId);
    } catch (err) {
      this.vmLog(vmId).error({ err }, "could not remove the VM's state folder");
    }
    rmSync(this.runtimeDirOf(vmId), { recursive: true, force: true });
  }

  /**
   * The secret a re-attach needs. Without a readable one the helper cannot be controlled: a helper
   * that is gone makes the VM CRASHED as usual; one that still runs is left running (killing a guest
   * over a lost file would be worse) and the VM keeps its state with the reason, until the file is
   * restored and the agent restarted, or a forced stop or delete kills the helper.
   */
  private async secretOf(entry: VmEntry, vmLog: Logger): Promise<ControlSecret | undefined> {
    const file = this.store.secretPath(entry.record.vmId);
    try {
      return { file, value: await readSecret(file) };
    } catch (err) {
      await this.cannotReattach(entry, err, vmLog);
      return undefined;
    }
  }

  /** A helper that is gone makes its VM CRASHED; one that runs but cannot be controlled is left running, reported. */
  private async cannotReattach(entry: VmEntry, err: unknown, vmLog: Logger): Promise<void> {
    const { vmId, helperPid, controlSocket } = entry.record;
    const message = err instanceof Error ? err.message : String(err);
    if (!(await isHelperOf(helperPid, controlSocket))) {
      vmLog.warn({ err }, "helper gone while the agent was down");
      this.transition(entry, "CRASHED", `helper process ${helperPid} was gone when the agent restarted (${message})`, { helperPid: 0 });
      return;
    }
    entry.unreachable = `the agent cannot control VM '${vmId}': ${message}; its helper (pid ${helperPid}) was left running. Restore the VM's control secret and restart the agent, or stop or delete the VM with force to kill the helper`;
    vmLog.error({ pid: helperPid, err }, "cannot re-attach to a running helper; it is left running");
    this.update(entry, { stateReason: entry.unreachable });
  }

  /** With `labels`: only the VMs carrying them (what a caller limited to them may see). */
  counts(labels?: Readonly<Record<string, string>>): { total: number; running: number } {
    let total = 0;
    let running = 0;
    for (const e of this.vms.values()) {
      if (labels && !Object.entries(labels).every(([k, v]) => e.record.spec.labels[k] === v)) continue;
      total++;
      if (e.record.state === "RUNNING") running++;
    }
    return { total, running };
  }

  get(vmId: string): VmRecord {
    return this.entry(vmId).record;
  }

  /** Whether the VM's helper is hung (stopped, or not answering), for GetVm; undefined when it answers. */
  hang(vmId: string): HelperHang | undefined {
    return this.vms.get(vmId)?.link?.hang();
  }

  list(state: VmState | undefined, labels: Record<string, string>): VmRecord[] {
    return [...this.vms.values()]
      .map((e) => e.record)
      .filter((r) => !state || r.state === state)
      .filter((r) => Object.entries(labels).every(([k, v]) => r.spec.labels[k] === v))
      .sort((a, b) => a.vmId.localeCompare(b.vmId));
  }

  /** Creates a VM and starts its helper; a retry with the same request id returns the same VM. */
  async create(vmId: string, requestId: string, req: SpecRequest): Promise<VmRecord> {
    validateVmId(vmId);
    if (requestId.length > 128) throw invalidArgument(`request_id is ${requestId.length} characters: at most 128`);
    const existing = this.vms.get(vmId)?.record ?? this.creating.get(vmId);
    if (existing) {
      if (requestId && existing.requestId === requestId) return "done" in existing ? existing.done : existing;
      throw new QumraError("already-exists", `VM '${vmId}' already exists${existing.requestId ? ` (created by request '${existing.requestId}')` : ""}; choose another vm_id or retry with the same request_id`);
    }
    const gate = this.options.createGate;
    const done = gate ? gate.run(() => this.doCreate(vmId, requestId, req)) : this.doCreate(vmId, requestId, req);
    this.creating.set(vmId, { requestId, done });
    try {
      return await done;
    } finally {
      this.creating.delete(vmId);
    }
  }

  /**
   * Write-ahead: the record (intent create, spec, request id), the image and the secret are durable
   * before the helper is spawned; a failed write removes them and the helper never runs. A crash
   * after that is reconciled by the next start (the helper adopted, or the create rolled back).
   */
  private async doCreate(vmId: string, requestId: string, req: SpecRequest): Promise<VmRecord> {
    this.requireWritable(`create VM '${vmId}'`);
    const limits = await this.options.hostLimits();
    if ("unavailable" in limits) throw failedPrecondition(`cannot create VMs on this host: ${limits.unavailable}`);
    const { spec, image } = validateSpec(vmId, req, limits, (b) => createHash("sha256").update(b).digest("hex"));
    // Held until the VM is defined (then it counts as one) or its create failed.
    const release = this.options.admission?.admit(vmId, spec, this.specs());
    try {
      return await this.launchNew(vmId, requestId, spec, image);
    } finally {
      release?.();
    }
  }

  /** The specs of every defined VM, whatever its state (what admission counts). */
  specs(): VmSpec[] {
    return [...this.vms.values()].map((e) => e.record.spec);
  }

  /**
   * `intent`: a restore or an incoming migration keeps its intent until the VM is its own (state loaded,
   * or committed); a create's is cleared once the helper runs.
   */
  private async launchNew(vmId: string, requestId: string, spec: VmSpec, image: Uint8Array | undefined, intent?: VmIntent, createdReason = "created"): Promise<VmRecord> {
    const vmLog = this.vmLog(vmId);
    const now = new Date().toISOString();
    let record: VmRecord = {
      vmId,
      requestId,
      spec,
      state: "CREATED",
      stateReason: "",
      createdAt: now,
      stateChangedAt: now,
      helperPid: 0,
      controlSocket: path.join(this.runtimeDirOf(vmId), "control.sock"),
      lastEventSequence: 0,
      intent: intent ?? { op: "create", at: now },
    };
    let secret: ControlSecret;
    try {
      this.store.save(record);
      if (image) this.store.saveImage(vmId, image);
      const file = this.store.secretPath(vmId);
      secret = { file, value: createSecret(file) };
    } catch (err) {
      this.rollBack(vmId);
      throw err;
    }
    let link: HelperLink;
    try {
      link = await this.options.launcher.launch(vmId, spec, this.store.imagePath(vmId), secret, vmLog);
    } catch (err) {
      await this.killAll(vmId, helpersUnder(this.options.runtimeDir).get(this.runtimeDirOf(vmId)) ?? []);
      this.rollBack(vmId);
      throw err;
    }
    record = { ...record, helperPid: link.pid, controlSocket: link.socketPath, sandbox: link.client.hello?.sandbox, intent };
    try {
      this.store.save(record);
    } catch (err) {
      // The helper runs but its record cannot say so: undo, so disk and memory agree.
      link.detach();
      await this.killAll(vmId, [link.pid]);
      this.rollBack(vmId);
      throw err;
    }
    const entry = this.newEntry(record);
    this.vms.set(vmId, entry);
    this.adopt(entry, link);
    this.emit(entry, "CREATED", createdReason);
    vmLog.info({ pid: link.pid, vcpus: spec.vcpus, memory_bytes: spec.memoryBytes, boot: spec.boot.kind, sandbox: record.sandbox ? describeSandbox(record.sandbox) : "not reported" }, "VM created");
    return record;
  }

  start(vmId: string): Promise<VmRecord> {
    return this.lifecycle(vmId, ["CREATED"], "start", async (e) => {
      await this.ask(e, (c) => c.start());
      this.transition(e, "RUNNING", "started", { startedAt: new Date().toISOString() });
    });
  }

  pause(vmId: string): Promise<VmRecord> {
    return this.lifecycle(vmId, ["RUNNING"], "pause", async (e) => {
      await this.ask(e, (c) => c.pause());
      this.transition(e, "PAUSED", "paused by client");
    });
  }

  resume(vmId: string): Promise<VmRecord> {
    return this.lifecycle(vmId, ["PAUSED"], "resume", async (e) => {
      await this.ask(e, (c) => c.resume());
      this.transition(e, "RUNNING", "resumed by client");
    });
  }

  /** Stops the VM: the guest's power-off first unless forced; the helper exits. Idempotent. */
  stop(vmId: string, opts: { force: boolean; timeoutMs: number }): Promise<VmRecord> {
    return this.lifecycle(vmId, ["CREATED", "RUNNING", "PAUSED", "STOPPED", "CRASHED"], "stop", async (e) => {
      if (!LIVE_STATES.includes(e.record.state)) return;
      if (e.unreachable && opts.force) return this.killUnreachable(e, "stopped by client (forced): the helper could not be controlled, so it was killed");
      await this.stopHelper(e, opts.force ? 0 : opts.timeoutMs, opts.force ? "stopped by client (forced)" : "stopped by client");
    });
  }

  async delete(vmId: string, force: boolean): Promise<void> {
    // Checked before anything: an id becomes a path only once it is known to be an id.
    validateVmId(vmId);
    if (typeof vmId === "string" && !this.vms.has(vmId) && this.orphans.some((o) => o.name === vmId)) return this.deleteOrphan(vmId, force);
    const e = this.entry(vmId);
    this.refuseWhileMigrating(e, "delete");
    await this.serial(e, async () => {
      if ((e.record.state === "RUNNING" || e.record.state === "PAUSED") && !force) {
        throw failedPrecondition(`cannot delete VM '${vmId}': it is ${e.record.state}; stop it first or pass force`);
      }
      this.writeAhead(e, "delete");
      try {
        if (e.unreachable) await this.killUnreachable(e, "killed for deletion: the helper could not be controlled");
        else if (LIVE_STATES.includes(e.record.state)) await this.stopHelper(e, 0, "stopped for deletion");
      } catch (err) {
        e.record = { ...e.record, intent: undefined };
        this.persist(e);
        throw err;
      }
      this.vms.delete(vmId);
      this.rollBack(vmId);
      this.emit(e, "DELETED", "deleted", "DELETED");
      this.vmLog(vmId).info("VM deleted");
    });
  }

  /**
   * A quarantined record: with force, its verified helpers are killed and its runtime dir removed; the
   * quarantined folder stays for inspection. Nothing outside the runtime dir's VM folders is touched.
   */
  private async deleteOrphan(name: string, force: boolean): Promise<void> {
    const orphan = this.orphans.find((o) => o.name === name)!;
    if (!force) throw failedPrecondition(`'${name}' is a quarantined record (${orphan.problem}), not a VM; delete it with force to kill its helper${orphan.helperPids.length ? ` (pid ${orphan.helperPids.join(", ")})` : ""}`);
    if (VM_ID.test(name)) {
      const pids = helpersUnder(this.options.runtimeDir).get(this.runtimeDirOf(name)) ?? [];
      await this.killAll(name, pids);
      rmSync(this.runtimeDirOf(name), { recursive: true, force: true });
      this.log.warn({ record: name, pids }, "quarantined record's helper killed");
    }
    this.orphans.splice(this.orphans.indexOf(orphan), 1);
  }

  async getVcpu(vmId: string, vcpu: number): Promise<VcpuRegs> {
    const e = this.pausedEntry(vmId, vcpu, "read registers of");
    return registersFromHelper(await this.ask(e, (c) => c.getRegs(vcpu)));
  }

  async setVcpu(vmId: string, vcpu: number, state: { regs?: GpRegs; sregs?: SpecialRegs }): Promise<VcpuRegs> {
    const e = this.pausedEntry(vmId, vcpu, "write registers of");
    const flat = registersToHelper(state);
    return registersFromHelper(await this.ask(e, (c) => (Object.keys(flat).length ? c.setRegs(vcpu, flat) : c.getRegs(vcpu))));
  }

  async readMemory(vmId: string, address: number, length: number): Promise<Buffer> {
    const e = this.liveEntry(vmId, "read memory of");
    this.checkRange(e, address, length);
    return this.ask(e, (c) => c.readMemory(address, length));
  }

  async writeMemory(vmId: string, address: number, data: Uint8Array): Promise<void> {
    const e = this.liveEntry(vmId, "write memory of");
    // The helper's own writes are not in KVM's dirty log: a migration would not resend them.
    this.refuseWhileMigrating(e, "write memory of");
    this.checkRange(e, address, data.length);
    await this.ask(e, (c) => c.writeMemory(address, data));
  }

  async stats(vmId: string): Promise<{ record: VmRecord; stats: VmStatsSnapshot }> {
    const e = this.entry(vmId);
    const uptimeMs = e.record.startedAt && LIVE_STATES.includes(e.record.state) ? Date.now() - Date.parse(e.record.startedAt) : 0;
    const base: VmStatsSnapshot = { uptimeMs, vcpus: [], helperRssBytes: 0, helperCpuUserMs: 0, helperCpuSystemMs: 0, consoleBytes: e.console.total, kvmVmStats: {} };
    if (!e.link || !LIVE_STATES.includes(e.record.state)) return { record: e.record, stats: base };
    const [helper, usage] = await Promise.all([this.ask(e, (c) => c.stats()), e.link.usage()]);
    return {
      record: e.record,
      stats: {
        ...base,
        ...usage,
        kvmVmStats: helper.vm,
        vcpus: helper.vcpus.map((v) => ({
          vcpu: v.id,
          exitsTotal: v.exits.total,
          exitsIo: v.exits.io,
          exitsMmio: v.exits.mmio,
          exitsHlt: v.exits.hlt,
          exitsOther: v.exits.total - v.exits.io - v.exits.mmio - v.exits.hlt,
          kvmStats: v.kvm,
        })),
      },
    };
  }

  /** Attaches to the console: the scrollback, then live output until the VM stops. */
  attachConsole(vmId: string, listener: ConsoleListener, onEnd: () => void): { scrollback: Buffer; detach: () => void } {
    const e = this.entry(vmId);
    const { scrollback, detach } = e.console.attach(listener);
    if (!LIVE_STATES.includes(e.record.state)) {
      // A stopped VM: the scrollback is all there is.
      setImmediate(onEnd);
      return { scrollback, detach };
    }
    e.consoleEnd.add(onEnd);
    return { scrollback, detach: () => (detach(), e.consoleEnd.delete(onEnd)) };
  }

  async consoleWrite(vmId: string, data: Buffer): Promise<void> {
    const e = this.liveEntry(vmId, "type into the console of");
    let offset = 0;
    // The UART's input FIFO is small; feed it in pieces as the helper accepts them.
    for (let attempt = 0; offset < data.length && attempt < 200; attempt++) {
      offset += await this.ask(e, (c) => c.consoleWrite(data.subarray(offset)));
      if (offset < data.length) await new Promise((r) => setTimeout(r, 10));
    }
    if (offset < data.length) throw new QumraError("resource-exhausted", `the guest is not reading its serial input: ${data.length - offset} of ${data.length} bytes not delivered`);
  }

  /**
   * The display of a VM, for display/: not-found for an unknown VM, failed-precondition unless it is
   * CREATED, RUNNING or PAUSED or when its helper has no framebuffer, unavailable if its helper is gone.
   */
  /** Records what a display adapter saw (a SPICE client linking, refused, leaving) as an event of the VM. */
  noteDisplayClient(vmId: string, type: "DISPLAY_CLIENT_CONNECTED" | "DISPLAY_CLIENT_REFUSED" | "DISPLAY_CLIENT_DISCONNECTED", reason: string): void {
    const e = this.vms.get(vmId);
    if (e) this.emit(e, type, reason);
  }

  displayPort(vmId: string, action: string): VmDisplayPort {
    const e = this.liveEntry(vmId, action);
    const link = this.link(e);
    if (!link.hasFramebuffer) throw failedPrecondition(`cannot ${action} VM '${vmId}': its helper has no framebuffer device`);
    const connection: HelperConnection = { usable: () => link.usable(), ended: link.ended.then((why) => `the VM's helper connection ended (${why})`) };
    return helperDisplayPort(connection);
  }

  /** Closes control connections without stopping any VM (agent shutdown). */
  close(): void {
    for (const e of this.vms.values()) e.link?.detach();
  }

  // ---- snapshots (snapshot-store.ts for the files, PROTOCOL.md "VM state" for the helper's side) ----

  /**
   * Writes snapshot `name` of a RUNNING or PAUSED VM: a running one is paused for the time it takes and
   * resumed after, whatever happens. The intent (with whether to resume) is written first, so an agent
   * killed part-way resumes the VM at its next start and removes the half-written folder.
   */
  async snapshot(vmId: string, name: string, onProgress: OnSnapshotProgress = () => {}): Promise<SnapshotInfo> {
    validateVmId(vmId);
    validateSnapshotName(name);
    const e = this.entry(vmId);
    this.refuseWhileMigrating(e, "snapshot");
    return this.serial(e, async () => {
      requireState(vmId, e.record.state, ["RUNNING", "PAUSED"], "snapshot");
      if (this.snapshots.exists(name)) throw new QumraError("already-exists", `a snapshot '${name}' already exists on this host; choose another name or delete it first`);
      const wasRunning = e.record.state === "RUNNING";
      this.writeAhead(e, "snapshot", { resume: wasRunning, snapshot: name });
      const vmLog = this.vmLog(vmId);
      const began = Date.now();
      let paused = false;
      const writer = this.snapshots.begin(name);
      try {
        if (wasRunning) {
          await this.ask(e, (c) => c.pause());
          paused = true;
        }
        const blob = await this.ask(e, (c) => c.saveState());
        const header = parseStateHeader(blob);
        if ("problem" in header) throw new QumraError("internal", `the helper's state of VM '${vmId}' is unreadable: ${header.problem}`);
        const ranges = await this.ask(e, (c) => c.ramMap());
        const ram = await this.ask(e, (c) => c.ramChecksum());
        const dataBytes = ranges.reduce((n, r) => n + r.length, 0);
        const total = blob.length + dataBytes;
        onProgress({ phase: "state", done: blob.length, total });
        writer.openMemory(e.record.spec.memoryBytes);
        let done = blob.length;
        for (const r of ranges) {
          for (let off = 0; off < r.length; off += MAX_MEMORY_IO) {
            const n = Math.min(MAX_MEMORY_IO, r.length - off);
            const data = await this.ask(e, (c) => c.readMemory(r.gpa + off, n));
            writer.writeMemory(ramOffsetOf(r.gpa + off), data);
            done += n;
            onProgress({ phase: "memory", done, total });
          }
        }
        const memCrc = writer.memoryCrc();
        if (memCrc !== ram.crc32) throw new QumraError("internal", `the memory read from VM '${vmId}' (crc32 0x${memCrc.toString(16)}) is not what its helper hashed (0x${ram.crc32.toString(16)})`);
        const boot = e.record.spec.boot;
        const manifest: SnapshotManifest = {
          manifestVersion: 1,
          name,
          stateFormat: header.version,
          createdAt: new Date().toISOString(),
          sourceVmId: vmId,
          spec: e.record.spec,
          wasRunning,
          cpuFeatures: header.cpuFeatures,
          memory: { file: "memory.bin", bytes: e.record.spec.memoryBytes, dataBytes: writer.dataBytes, crc32: memCrc },
          state: writer.writeFile("state.bin", blob),
          console: writer.writeFile("console.bin", e.console.scrollback()),
          ...(boot.kind === "flat" ? { image: writer.writeFile("image.bin", readFileSync(this.store.imagePath(vmId))) } : {}),
        };
        writer.commit(manifest);
        onProgress({ phase: "done", done: total, total });
        vmLog.info({ snapshot: name, state_bytes: blob.length, memory_data_bytes: dataBytes, ms: Date.now() - began, was_running: wasRunning }, "snapshot written");
        this.emit(e, "NOTICE", `snapshot '${name}' written`);
      } catch (err) {
        writer.abort();
        vmLog.warn({ err, snapshot: name }, "snapshot failed; nothing was kept");
        throw err;
      } finally {
        if (paused) {
          await this.ask(e, (c) => c.resume()).catch((err: unknown) => vmLog.error({ err }, "could not resume the VM after its snapshot"));
        }
        e.record = { ...e.record, intent: undefined };
        this.persist(e);
      }
      return this.snapshotInfo(name);
    });
  }

  listSnapshots(): SnapshotInfo[] {
    return this.snapshots.list((name, problem) => this.log.warn({ snapshot: name, problem }, "snapshot not listed: it is damaged"));
  }

  snapshotInfo(name: string): SnapshotInfo {
    validateSnapshotName(name);
    const info = this.snapshots.list().find((s) => s.manifest.name === name);
    if (!info) return { manifest: this.snapshots.manifest(name), diskBytes: 0 };
    return info;
  }

  deleteSnapshot(name: string): void {
    validateSnapshotName(name);
    this.requireWritable(`delete snapshot '${name}'`);
    this.snapshots.delete(name);
    this.log.info({ snapshot: name }, "snapshot deleted");
  }

  /**
   * Makes VM `vmId` from snapshot `name`: the manifest, every file's checksum, the format version, the
   * CPU features and admission are checked before any helper is spawned; then a helper of the saved
   * spec gets the RAM (WRITE_MEM) and the state (LOAD_STATE), and the VM is PAUSED at the saved point,
   * or RUNNING with `start`. Anything failing after the spawn removes the new VM again. A retry with the
   * same request id returns the same VM.
   */
  async restore(vmId: string, requestId: string, opts: { name: string; sourceVmId?: string; start: boolean }, onProgress: OnSnapshotProgress = () => {}): Promise<VmRecord> {
    validateVmId(vmId);
    validateSnapshotName(opts.name);
    if (opts.sourceVmId) validateVmId(opts.sourceVmId, "source_vm_id");
    if (requestId.length > 128) throw invalidArgument(`request_id is ${requestId.length} characters: at most 128`);
    const existing = this.vms.get(vmId)?.record ?? this.creating.get(vmId);
    if (existing) {
      if (requestId && existing.requestId === requestId) return "done" in existing ? existing.done : existing;
      throw new QumraError("already-exists", `VM '${vmId}' already exists; choose another vm_id${opts.sourceVmId === vmId ? `, or delete VM '${vmId}' first to restore the snapshot under its id` : ""}`);
    }
    const done = this.doRestore(vmId, requestId, opts, onProgress);
    this.creating.set(vmId, { requestId, done });
    try {
      return await done;
    } finally {
      this.creating.delete(vmId);
    }
  }

  private async doRestore(vmId: string, requestId: string, opts: { name: string; sourceVmId?: string; start: boolean }, onProgress: OnSnapshotProgress): Promise<VmRecord> {
    const { name } = opts;
    this.requireWritable(`restore VM '${vmId}'`);
    const manifest = this.snapshots.manifest(name);
    if (opts.sourceVmId && opts.sourceVmId !== manifest.sourceVmId) throw failedPrecondition(`snapshot '${name}' was taken of VM '${manifest.sourceVmId}', not '${opts.sourceVmId}'`);
    if (manifest.stateFormat !== STATE_FORMAT) throw failedPrecondition(`snapshot '${name}' has state format version ${manifest.stateFormat}; this agent's helper reads version ${STATE_FORMAT}`);
    const limits = await this.options.hostLimits();
    if ("unavailable" in limits) throw failedPrecondition(`cannot restore VMs on this host: ${limits.unavailable}`);
    const spec = manifest.spec;
    if (spec.vcpus > limits.maxVcpus) throw new QumraError("resource-exhausted", `snapshot '${name}' is of a VM with ${spec.vcpus} vCPUs, more than this host's KVM allows (${limits.maxVcpus})`);
    const missing = missingCpuFeatures(manifest.cpuFeatures, limits.cpuFeatures ?? []);
    if (missing.length) throw failedPrecondition(`snapshot '${name}' was taken on a host with CPU features this host lacks (${missing.join(", ")}); restore it on a host with them`);
    const verified = this.snapshots.verify(name, manifest, (d, t) => onProgress({ phase: "verify", done: d, total: t }));
    try {
      const header = parseStateHeader(verified.state);
      if ("problem" in header) throw failedPrecondition(`snapshot '${name}' is refused: ${header.problem}; nothing was changed`);
      if (header.vcpus !== spec.vcpus || header.memoryBytes !== spec.memoryBytes || header.fbWidth !== spec.display.width || header.fbHeight !== spec.display.height) {
        throw failedPrecondition(`snapshot '${name}' is refused: its state is of a ${header.vcpus}-vCPU ${header.memoryBytes}-byte ${header.fbWidth}x${header.fbHeight} VM, its manifest says otherwise; nothing was changed`);
      }
      const headerMissing = missingCpuFeatures(header.cpuFeatures, limits.cpuFeatures ?? []);
      if (headerMissing.length) throw failedPrecondition(`snapshot '${name}' was taken on a host with CPU features this host lacks (${headerMissing.join(", ")})`);
      const release = this.options.admission?.admit(vmId, spec, this.specs());
      let record: VmRecord;
      try {
        const gate = this.options.createGate;
        const launch = () => this.launchNew(vmId, requestId, spec, verified.image, { op: "restore", at: new Date().toISOString(), snapshot: name }, `created to restore snapshot '${name}'`);
        record = await (gate ? gate.run(launch) : launch());
      } finally {
        release?.();
      }
      const e = this.vms.get(vmId);
      if (!e) throw new QumraError("internal", `VM '${vmId}' vanished while it was restored`);
      try {
        await this.loadSnapshot(e, verified.memoryFd, verified.state, manifest, onProgress);
        e.console.reset(verified.console);
        e.record = { ...e.record, intent: undefined };
        this.transition(e, "PAUSED", `restored from snapshot '${name}' (of VM '${manifest.sourceVmId}', taken ${manifest.createdAt})`);
        if (opts.start) {
          await this.ask(e, (c) => c.resume());
          this.transition(e, "RUNNING", `restored from snapshot '${name}' and resumed`, { startedAt: new Date().toISOString() });
        }
        this.vmLog(vmId).info({ snapshot: name, source_vm_id: manifest.sourceVmId, running: opts.start }, "VM restored");
        record = e.record;
      } catch (err) {
        this.vmLog(vmId).warn({ err, snapshot: name }, "restore failed after its helper started; the new VM is removed");
        await this.stopHelper(e, 0, "stopped: its restore failed").catch(() => undefined);
        this.vms.delete(vmId);
        this.rollBack(vmId);
        this.emit(e, "DELETED", `its restore from snapshot '${name}' failed: ${(err as Error).message}`, "DELETED");
        throw err;
      }
      return record;
    } finally {
      closeSync(verified.memoryFd);
    }
  }

  /** RAM first (only what holds data, and whatever the new helper's loader wrote), then the state. */
  private async loadSnapshot(e: VmEntry, memoryFd: number, state: Buffer, manifest: SnapshotManifest, onProgress: OnSnapshotProgress): Promise<void> {
    const size = manifest.memory.bytes;
    const loaderWrote: RamRange[] = await this.ask(e, (c) => c.ramMap());
    const touched = (gpa: number, len: number) => loaderWrote.some((r) => r.gpa < gpa + len && gpa < r.gpa + r.length);
    const total = size + state.length;
    const buf = Buffer.alloc(MAX_MEMORY_IO);
    const piece = 64 << 10;
    const zeros = Buffer.alloc(piece);
    for (let off = 0; off < size; ) {
      const n = readSync(memoryFd, buf, 0, Math.min(buf.length, size - off), off);
      if (n <= 0) throw failedPrecondition(`snapshot '${manifest.name}': memory.bin ended at ${off} of ${size} bytes`);
      // A chunk never crosses the 3 GiB end of the low slot (both are MiB-aligned), so one gpa base holds.
      const gpa = gpaOfRamOffset(off);
      for (let at = 0; at < n; at += piece) {
        const p = buf.subarray(at, Math.min(n, at + piece));
        if (!p.equals(zeros.subarray(0, p.length)) || touched(gpa + at, p.length)) await this.ask(e, (c) => c.writeMemory(gpa + at, p));
      }
      off += n;
      onProgress({ phase: "memory", done: off, total });
    }
    await this.ask(e, (c) => c.loadState(state)).catch((err: unknown) => {
      // The helper's own checks (every section's CRC and shape) refused it: the snapshot is bad, not the call.
      if (err instanceof QumraError && err.kind === "invalid-argument") throw failedPrecondition(`snapshot '${manifest.name}' is refused by the VM's helper: ${err.message}`);
      throw err;
    });
    const ram = await this.ask(e, (c) => c.ramChecksum());
    if (ram.crc32 !== manifest.memory.crc32) throw new QumraError("internal", `the restored RAM (crc32 0x${ram.crc32.toString(16)}) is not the snapshot's (0x${manifest.memory.crc32.toString(16)})`);
    onProgress({ phase: "done", done: total, total });
  }

  // ---- live migration (migration-source.ts, migration-target.ts; PROTOCOL.md "Live migration") ----

  /**
   * Moves a RUNNING or PAUSED VM to the agent behind `channel`. The intent (destination, whether the VM
   * ran) is durable first; "commit" is written before the switch. Failing before it, the VM is as it was
   * here; at it, the destination is asked, and a VM nobody can place stays paused here, saying so.
   */
  async migrate(vmId: string, destination: string, channel: MigrationChannel, opts: Omit<MigrationOptions, "signal">, onProgress: OnMigrationProgress = () => {}): Promise<MigrationProgress> {
    validateVmId(vmId);
    const e = this.entry(vmId);
    this.refuseWhileMigrating(e, "migrate");
    const abort = new AbortController();
    e.migration = { destination, committing: false, cancel: () => abort.abort() };
    try {
      return await this.serial(e, async () => {
        requireState(vmId, e.record.state, ["RUNNING", "PAUSED"], "migrate");
        const running = e.record.state === "RUNNING";
        const migrationId = randomUUID();
        const intent: Partial<VmIntent> = { peer: destination, migrationPhase: "copy", resume: running, migrationId };
        this.writeAhead(e, "migrate-out", intent);
        const vmLog = this.vmLog(vmId);
        vmLog.info({ destination, migration_id: migrationId }, "migration started");
        const source = new MigrationSource(
          {
            vmId,
            spec: e.record.spec,
            image: e.record.spec.boot.kind === "flat" ? readFileSync(this.store.imagePath(vmId)) : undefined,
            running,
            ask: (exchange) => this.ask(e, exchange),
            scrollback: () => e.console.scrollback(),
            beginCommit: () => {
              this.writeAhead(e, "migrate-out", { ...intent, migrationPhase: "commit" });
              if (e.migration) e.migration.committing = true;
            },
          },
          channel,
          { ...opts, signal: abort.signal },
          onProgress,
          migrationId,
          this.options.agentName ?? "another agent",
        );
        const outcome = await source.run();
        return await this.settleOutcome(e, destination, outcome);
      });
    } finally {
      e.migration = undefined;
    }
  }

  /** Cancels VM vmId's migration out if it has not reached the switch. */
  cancelMigration(vmId: string): void {
    const e = this.entry(vmId);
    if (!e.migration) throw notFound(`VM '${vmId}' is not migrating`);
    if (e.migration.committing) throw failedPrecondition(`the migration of VM '${vmId}' to ${e.migration.destination} is at its switch and cannot be cancelled`);
    e.migration.cancel();
  }

  /** Where a VM that migrated away from this agent went (for clients that come late). */
  migratedTo(vmId: string): string | undefined {
    return this.migratedAway.get(vmId)?.destination;
  }

  /** Where the destination serves a migrated-away VM's display, if it does (SPICE's switch-host). */
  migratedDisplay(vmId: string): DisplayHint | undefined {
    return this.migratedAway.get(vmId)?.display;
  }

  private async settleOutcome(e: VmEntry, destination: string, outcome: SourceOutcome): Promise<MigrationProgress> {
    const vmId = e.record.vmId;
    const vmLog = this.vmLog(vmId);
    if (outcome.kind === "moved") {
      // Gone here before the call answers: a caller listing both hosts then sees one copy.
      await this.finishMigrationOut(e, destination, outcome.progress);
      return outcome.progress;
    }
    const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
    if (outcome.kind === "unknown") {
      const reason = `its migration to ${destination} failed at the switch (${message}) and the destination cannot say whether it has the VM: it stays paused here; if it runs there, delete it here with force, otherwise resume it`;
      this.update(e, { state: "PAUSED", stateReason: reason, intent: undefined });
      this.emit(e, "NOTICE", reason);
      vmLog.error({ destination, err: outcome.error }, "migration outcome unknown; the VM stays paused");
      throw new QumraError("unavailable", `VM '${vmId}': ${reason}`, { cause: outcome.error });
    }
    e.record = { ...e.record, intent: undefined };
    this.persist(e);
    if (outcome.kind === "kept") {
      this.emit(e, "NOTICE", `its migration to ${destination} failed at the switch (${message}); the destination does not have it, so it runs here again`);
      throw new QumraError("unavailable", `the migration of VM '${vmId}' to ${destination} failed at the switch (${message}); the VM runs here again`, { cause: outcome.error });
    }
    vmLog.warn({ destination, err: outcome.error }, "migration failed before the switch; the VM stays here");
    this.emit(e, "NOTICE", `its migration to ${destination} failed: ${message}; it stays here`);
    throw outcome.error;
  }

  /** The destination runs the VM: MIGRATED here (consoles and displays end naming it), the helper ends, the VM goes. */
  private async finishMigrationOut(e: VmEntry, destination: string, progress: MigrationProgress): Promise<void> {
    const vmId = e.record.vmId;
    const from = e.record.state;
    this.migratedAway.set(vmId, { destination, display: progress.display });
    if (this.migratedAway.size > MIGRATED_KEPT) this.migratedAway.delete(this.migratedAway.keys().next().value!);
    // Not persisted: the record goes below, and until then its "commit" intent says what happened.
    e.record = { ...e.record, state: "MIGRATED", stateReason: `migrated to ${destination}`, stateChangedAt: new Date().toISOString() };
    this.emit(e, "MIGRATED", `migrated to ${destination} (downtime ${progress.downtimeMs} ms, ${progress.bytesSent} bytes sent)`, "MIGRATED", from);
    this.endConsole(e);
    this.vmLog(vmId).info({ destination, downtime_ms: progress.downtimeMs, bytes_sent: progress.bytesSent, total_ms: progress.totalMs, downtime_parts_ms: progress.downtimePartsMs }, "VM migrated");
    if (e.link) await this.stopHelper(e, 0, `migrated to ${destination}`).catch((err: unknown) => this.vmLog(vmId).error({ err }, "could not end the helper of a VM that migrated away"));
    this.vms.delete(vmId);
    this.rollBack(vmId);
    this.emit(e, "DELETED", `migrated to ${destination}`, "DELETED");
  }

  /** After a restart, a VM whose migration out was interrupted. */
  private async settleMigrationOut(e: VmEntry, intent: VmIntent): Promise<void> {
    const vmLog = this.vmLog(e.record.vmId);
    await this.ask(e, (c) => c.ramDirtyLog(false)).catch(() => undefined);
    if (intent.migrationPhase === "commit") {
      const reason = `its migration to ${intent.peer ?? "?"} was interrupted by an agent restart at the switch: it stays paused here; if it runs there, delete it here with force, otherwise resume it`;
      if (e.record.state === "RUNNING") await this.ask(e, (c) => c.pause()).catch((err: unknown) => vmLog.error({ err }, "could not pause the VM of an interrupted switch"));
      this.update(e, { state: e.record.state === "RUNNING" ? "PAUSED" : e.record.state, stateReason: reason, intent: undefined });
      this.emit(e, "NOTICE", reason);
      vmLog.warn({ destination: intent.peer }, "interrupted migration switch: the VM stays paused");
      return;
    }
    if (intent.resume && e.record.state === "PAUSED") {
      try {
        await this.ask(e, (c) => c.resume());
        this.transition(e, "RUNNING", `resumed: its migration to ${intent.peer ?? "?"} was interrupted by an agent restart before the switch`);
      } catch (err) {
        vmLog.error({ err }, "could not resume the VM an interrupted migration had paused");
      }
    }
  }

  /**
   * The destination side: makes VM offer.vmId (same spec, intent migrate-in, CREATED) after the same
   * checks as a create, and returns what takes its pages, state and commit.
   */
  async receiveMigration(offer: { vmId: string; spec: SpecRequest; running: boolean; migrationId: string; source: string }): Promise<IncomingMigration> {
    const { vmId, source } = offer;
    validateVmId(vmId);
    if (this.vms.has(vmId) || this.creating.has(vmId)) throw new QumraError("already-exists", `VM '${vmId}' already exists on this host: a migration keeps its vm_id, so delete this one first or migrate elsewhere`);
    this.requireWritable(`receive VM '${vmId}'`);
    const limits = await this.options.hostLimits();
    if ("unavailable" in limits) throw failedPrecondition(`cannot receive VMs on this host: ${limits.unavailable}`);
    const { spec, image } = validateSpec(vmId, offer.spec, limits, (b) => createHash("sha256").update(b).digest("hex"));
    const intent: VmIntent = { op: "migrate-in", at: new Date().toISOString(), peer: source, migrationId: offer.migrationId };
    const launch = async () => {
      const release = this.options.admission?.admit(vmId, spec, this.specs());
      try {
        return await this.launchNew(vmId, "", spec, image, intent, `created for its incoming migration from ${source}`);
      } finally {
        release?.();
      }
    };
    const done = this.options.createGate ? this.options.createGate.run(launch) : launch();
    this.creating.set(vmId, { requestId: "", done });
    try {
      await done;
    } finally {
      this.creating.delete(vmId);
    }
    const e = this.entry(vmId);
    const incoming = new IncomingMigration(
      {
        vmId,
        ask: (exchange) => this.ask(e, exchange),
        loaded: (scrollback) => {
          e.console.reset(scrollback);
          this.transition(e, "PAUSED", `incoming migration from ${source}: state loaded`);
        },
        commit: async (resume) => {
          // Durable first: from here a restart keeps this VM (the source will not run it again).
          this.requireWritable(`take over VM '${vmId}'`);
          const record: VmRecord = { ...e.record, intent: undefined };
          this.store.save(record);
          e.record = record;
          // A source asking after a lost commit answer reads "migrated from" (api/migration-peer.ts probe).
          if (resume) {
            await this.ask(e, (c) => c.resume());
            this.transition(e, "RUNNING", `migrated from ${source}`, { startedAt: e.record.startedAt ?? new Date().toISOString() });
          } else this.update(e, { stateReason: `migrated from ${source} (paused there)` });
          this.vmLog(vmId).info({ source, running: resume }, "VM received by migration");
        },
        discard: async (reason) => {
          if (this.vms.get(vmId) !== e) return;
          this.vmLog(vmId).warn({ source, reason }, "incoming migration abandoned; its VM is removed");
          if (e.link) await this.stopHelper(e, 0, `its incoming migration ended: ${reason}`).catch(() => undefined);
          this.vms.delete(vmId);
          this.rollBack(vmId);
          this.emit(e, "DELETED", `its incoming migration from ${source} ended before the switch: ${reason}`, "DELETED");
        },
      },
      offer.running,
    );
    try {
      await incoming.prepare();
    } catch (err) {
      await incoming.end(`its RAM could not be prepared: ${(err as Error).message}`);
      throw err;
    }
    return incoming;
  }

  private refuseWhileMigrating(e: VmEntry, action: string): void {
    if (e.migration) throw failedPrecondition(`cannot ${action} VM '${e.record.vmId}': it is migrating to ${e.migration.destination}${e.migration.committing ? " and at its switch" : "; cancel the migration first (CancelMigration)"}`);
    if (e.record.intent?.op === "migrate-in") throw failedPrecondition(`cannot ${action} VM '${e.record.vmId}': it is arriving by migration from ${e.record.intent.peer ?? "another agent"}`);
  }

  // ---- internals ----

  private newEntry(record: VmRecord): VmEntry {
    return { record, console: new ConsoleBuffer(undefined, this.options.maxConsolesPerVm), consoleEnd: new Set(), busy: Promise.resolve() };
  }

  private vmLog(vmId: string): Logger {
    return this.log.child({ vm_id: vmId });
  }

  private entry(vmId: string): VmEntry {
    if (typeof vmId !== "string" || vmId === "") throw invalidArgument("vm_id is missing");
    const e = this.vms.get(vmId);
    if (!e) throw notFound(`no VM '${vmId}' on this host`);
    return e;
  }

  private link(e: VmEntry): HelperLink {
    if (e.unreachable) throw failedPrecondition(e.unreachable);
    if (!e.link) throw new QumraError("unavailable", `VM '${e.record.vmId}' has no running helper`);
    return e.link;
  }

  /** One exchange with the VM's helper; its errors come out as the agent's typed errors. */
  private ask<T>(e: VmEntry, exchange: (client: HelperClient) => Promise<T>): Promise<T> {
    const link = this.link(e);
    // A stopped helper cannot answer at all: say so now rather than after the whole deadline.
    const hang = link.hang();
    if (hang?.stopped) return Promise.reject(new QumraError("unavailable", `VM '${e.record.vmId}': ${hang.reason}`));
    // usable(): a request made while a lost connection is being made again waits for it.
    return askHelper(async () => exchange(await link.usable()));
  }

  private liveEntry(vmId: string, action: string): VmEntry {
    const e = this.entry(vmId);
    requireState(vmId, e.record.state, LIVE_STATES, action);
    return e;
  }

  private pausedEntry(vmId: string, vcpu: number, action: string): VmEntry {
    const e = this.entry(vmId);
    requireState(vmId, e.record.state, ["PAUSED"], action);
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= e.record.spec.vcpus) {
      throw invalidArgument(`vcpu ${vcpu} is out of range: VM '${vmId}' has vCPUs 0 to ${e.record.spec.vcpus - 1}`);
    }
    return e;
  }

  private checkRange(e: VmEntry, address: number, length: number): void {
    const size = e.record.spec.memoryBytes;
    if (!inGuestRam(size, address, length)) {
      const ranges = guestRamRanges(size).map(([a, b]) => `0x${a.toString(16)}..0x${b.toString(16)}`).join(" and ");
      throw new QumraError("out-of-range", `guest-physical range 0x${address.toString(16)}..0x${(address + length).toString(16)} is outside VM '${e.record.vmId}''s RAM (${ranges})`);
    }
  }

  /** Runs one lifecycle operation at a time per VM, after checking the state it needs. */
  private lifecycle(vmId: string, allowed: readonly VmState[], action: VmIntent["op"], op: (e: VmEntry) => Promise<void>): Promise<VmRecord> {
    const e = this.entry(vmId);
    this.refuseWhileMigrating(e, action);
    return this.serial(e, async () => {
      requireState(vmId, e.record.state, allowed, action);
      // A stop of a VM that is not live changes nothing, so needs no write.
      if (LIVE_STATES.includes(e.record.state)) this.writeAhead(e, action);
      try {
        await op(e);
      } finally {
        if (e.record.intent) {
          e.record = { ...e.record, intent: undefined };
          this.persist(e);
        }
      }
      return e.record;
    });
  }

  /**
   * Makes the intent durable before the VM is told anything: if this write fails (full, read-only
   * disk) the operation fails with RESOURCE_EXHAUSTED or UNAVAILABLE and the VM has not changed.
   */
  private writeAhead(e: VmEntry, op: VmIntent["op"], extra: Partial<VmIntent> = {}): void {
    this.requireWritable(`${op} VM '${e.record.vmId}'`);
    const record: VmRecord = { ...e.record, intent: { op, at: new Date().toISOString(), ...extra } };
    this.store.save(record);
    e.record = record;
  }

  private serial<T>(e: VmEntry, op: () => Promise<T>): Promise<T> {
    const run = e.busy.then(op, op);
    e.busy = run.catch(() => undefined);
    return run;
  }

  private adopt(entry: VmEntry, link: HelperLink): void {
    entry.link = link;
    const vmLog = this.vmLog(entry.record.vmId);
    link.on("console", (data) => entry.console.push(data));
    link.on("reconnected", (status) => this.resync(entry, link, status));
    link.on("event", (event) => {
      switch (event.kind) {
        case "reset":
          this.emit(entry, "GUEST_RESET", `guest reset${event.source ? ` (${event.source})` : ""}`);
          break;
        case "tripleFault":
        case "internalError": {
          const what = event.kind === "tripleFault" ? "guest triple fault" : "KVM internal error";
          this.transition(entry, "CRASHED", `${what} at rip=0x${event.rip.toString(16)} on vCPU ${event.vcpu}${event.message ? `: ${event.message}` : ""}`);
          void this.reap(entry);
          break;
        }
        case "state": {
          const state = vmStateOf(event.state);
          if (state === "STOPPED" && entry.record.state !== "STOPPED" && !entry.stopping) {
            this.transition(entry, "STOPPED", event.reason || "guest stopped");
            void this.reap(entry);
          } else if (state === "CRASHED" && entry.record.state !== "CRASHED") {
            this.transition(entry, "CRASHED", event.reason || "helper reported a crash");
            void this.reap(entry);
          }
          break;
        }
        default:
          break;
      }
    });
    link.onExit((why) => {
      if (entry.link !== link) return;
      entry.link = undefined;
      this.endConsole(entry);
      if (!this.vms.has(entry.record.vmId) || !LIVE_STATES.includes(entry.record.state)) {
        this.update(entry, { helperPid: 0 });
        return;
      }
      if (entry.stopping) return;
      if (link.takenOver) {
        // Not a crash: the VM runs, under someone else's control. Reported like a lost secret.
        entry.unreachable = `the agent no longer controls VM '${entry.record.vmId}': ${why}. Stop the other controller and restart this agent, or stop or delete the VM with force to kill the helper`;
        this.update(entry, { stateReason: entry.unreachable });
        return;
      }
      vmLog.error({ why }, "helper died");
      this.transition(entry, "CRASHED", why, { helperPid: 0 });
    });
  }

  /** After a lost control connection was made again: take the helper's state as the truth. */
  private resync(entry: VmEntry, link: HelperLink, status: HelperStatus): void {
    if (entry.link !== link || entry.stopping) return;
    const helperState = vmStateOf(status.state);
    this.vmLog(entry.record.vmId).info({ pid: link.pid, state: helperState }, "control connection made again");
    if (helperState !== entry.record.state) this.transition(entry, helperState, status.reason || "state found on reconnect");
    if (helperState === "STOPPED" || helperState === "CRASHED") void this.reap(entry);
  }

  /** Ends a helper the agent cannot talk to (only on a forced stop or delete; the pid is checked first). */
  private async killUnreachable(e: VmEntry, reason: string): Promise<void> {
    const { helperPid, controlSocket } = e.record;
    if (await isHelperOf(helperPid, controlSocket)) {
      try {
        process.kill(helperPid, "SIGKILL");
      } catch {
        /* gone meanwhile */
      }
    }
    e.unreachable = undefined;
    this.transition(e, "STOPPED", reason, { helperPid: 0 });
  }

  /** Tells a helper whose guest has stopped or crashed to exit (its state is already recorded). */
  private async reap(entry: VmEntry): Promise<void> {
    const link = entry.link;
    if (!link) return;
    await link.client.stop(0).catch(() => undefined);
    await link.exited;
  }

  /**
   * Stops the helper. Unforced: STOP with the guest's timeout, and the helper must answer. Forced
   * (timeoutMs 0): STOP briefly, and a helper that does not answer or exit in FORCE_ASK_MS (or is
   * stopped by a signal) is ended by SIGTERM, then SIGKILL, so a forced stop always finishes.
   */
  private async stopHelper(e: VmEntry, timeoutMs: number, reason: string): Promise<void> {
    const link = this.link(e);
    const forced = timeoutMs === 0;
    const askedGuest = e.record.state === "RUNNING" && !forced;
    let done!: () => void;
    e.stopping = new Promise<void>((r) => (done = r));
    try {
      let why = reason;
      if (forced) {
        // A stopped helper cannot answer STOP: no time is spent asking it.
        const stopped = link.hang()?.stopped === true;
        const ended = !stopped && (await this.askToExit(link));
        if (!ended) {
          const { signals, gone } = await link.terminate(FORCE_GRACE_MS);
          if (!gone) throw new QumraError("internal", `could not end helper pid ${link.pid} of VM '${e.record.vmId}': it survived ${signals.join(" and ") || "no signal (it is not the VM's helper any more)"}`);
          why = `${reason}; the helper ${stopped ? "was stopped (SIGSTOP or a debugger)" : "did not answer"}, so it was ended by ${signals.join(" then ")}`;
          this.vmLog(e.record.vmId).warn({ pid: link.pid, signals }, "forced stop: the helper did not answer, ended it by signal");
        }
      } else {
        const result = await askHelper(() =>
          link.client.stop(timeoutMs).catch((err: unknown) => {
            if (link.client.closed) return { forced: true, exitStatus: -1 };
            throw err;
          }),
        ).catch((err: unknown) => {
          if (err instanceof QumraError && err.kind === "deadline-exceeded") throw new QumraError(err.kind, `${err.message}; stop or delete the VM with force to kill its helper`, { cause: err });
          throw err;
        });
        // It answered and should now exit; one that does not is ended rather than waited for for ever.
        if (!(await link.waitForExit(EXIT_AFTER_STOP_MS)) && !(await link.terminate(FORCE_GRACE_MS)).gone) {
          throw new QumraError("internal", `helper pid ${link.pid} of VM '${e.record.vmId}' answered STOP but did not exit, and survived SIGKILL`);
        }
        if (askedGuest) why = result.forced ? `${reason}; the guest did not power off within ${timeoutMs} ms, so it was forced` : `${reason}; the guest powered off`;
      }
      if (LIVE_STATES.includes(e.record.state)) this.transition(e, "STOPPED", why, { helperPid: 0 });
      else this.update(e, { helperPid: 0 });
    } finally {
      e.stopping = undefined;
      done();
    }
  }

  /** Asks the helper to exit now; true once it has, within FORCE_ASK_MS. */
  private async askToExit(link: HelperLink): Promise<boolean> {
    const answered = await link.client.stop(0, FORCE_ASK_MS).then(
      () => true,
      () => link.client.closed,
    );
    return answered && (await link.waitForExit(FORCE_ASK_MS));
  }

  private endConsole(e: VmEntry): void {
    for (const end of e.consoleEnd) end();
    e.consoleEnd.clear();
  }

  private transition(e: VmEntry, to: VmState, reason: string, extra: Partial<VmRecord> = {}): void {
    const from = e.record.state;
    if (from === to) return this.update(e, { stateReason: reason, ...extra });
    if (!canTransition(from, to)) {
      this.vmLog(e.record.vmId).warn({ from, to, reason }, "ignoring an impossible state change");
      return;
    }
    this.update(e, { state: to, stateReason: reason, stateChangedAt: new Date().toISOString(), ...extra });
    this.emit(e, "STATE_CHANGED", reason, to, from);
    this.vmLog(e.record.vmId).info({ from, to, reason }, "state changed");
    if (!LIVE_STATES.includes(to)) this.endConsole(e);
  }

  private update(e: VmEntry, changes: Partial<VmRecord>): void {
    e.record = { ...e.record, ...changes };
    this.persist(e);
  }

  /**
   * Saves what already happened (a helper died, a guest stopped): a failed write cannot undo it, so it
   * is logged, not thrown; the next start re-reads the helper's state. Intended changes use writeAhead.
   */
  private persist(e: VmEntry): void {
    if (!this.vms.has(e.record.vmId)) return;
    try {
      this.store.save(e.record);
    } catch (err) {
      this.vmLog(e.record.vmId).error({ err }, "VM record not saved");
    }
  }

  private emit(e: VmEntry, type: VmEventType, reason: string, state: VmState = e.record.state, previousState?: VmState): void {
    const event = this.events.append({ type, vmId: e.record.vmId, state, previousState, reason, vm: { ...e.record, lastEventSequence: this.events.lastSequence + 1 } });
    e.record = { ...e.record, lastEventSequence: event.sequence };
    this.persist(e);
  }
}
