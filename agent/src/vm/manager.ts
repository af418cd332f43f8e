// The VM registry: creates VMs through their helper processes, enforces the state machine, persists
// every change, supervises helpers and re-attaches to them after an agent restart.
import { createHash } from "node:crypto";
import type { Logger } from "../logger.js";
import { QumraError, invalidArgument, notFound, failedPrecondition } from "../errors.js";
import { ConsoleBuffer, type ConsoleListener } from "./console.js";
import { EventLog, type VmEventType } from "./event-log.js";
import { guestRamRanges, inGuestRam, validateSpec, validateVmId, type HostLimits, type SpecRequest } from "./spec.js";
import { canTransition, requireState } from "./state-machine.js";
import { VmStore } from "./store.js";
import { HelperLink, type ControlSecret, type HelperLauncher } from "./helper-link.js";
import type { HelperClient } from "./helper-client.js";
import { createSecret, readSecret } from "./control-secret.js";
import { isHelperOf } from "./helper-process.js";
import type { HelperStatus } from "./helper-protocol.js";
import { vmStateOf } from "./helper-convert.js";
import { askHelper } from "./helper-errors.js";
import { describeSandbox } from "./sandbox-status.js";
import { helperDisplayPort, type HelperConnection, type VmDisplayPort } from "./display-port.js";
import { registersFromHelper, registersToHelper } from "./registers.js";
import { LIVE_STATES, type GpRegs, type SpecialRegs, type VcpuRegs, type VmRecord, type VmState, type VmStatsSnapshot } from "./types.js";

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
}

export interface VmManagerOptions {
  stateDir: string;
  runtimeDir: string;
  logger: Logger;
  launcher: HelperLauncher;
  /** Current limits of the host (KVM max vCPUs, available memory), or why KVM cannot be used. */
  hostLimits: () => Promise<HostLimits | { unavailable: string }>;
  /** Console attachments per VM (--max-consoles-per-vm; default: no cap). */
  maxConsolesPerVm?: number;
}

export class VmManager {
  readonly events: EventLog;
  private readonly store: VmStore;
  private readonly vms = new Map<string, VmEntry>();
  private readonly creating = new Map<string, { requestId: string; done: Promise<VmRecord> }>();
  private readonly log: Logger;

  constructor(private readonly options: VmManagerOptions) {
    this.store = new VmStore(options.stateDir);
    this.events = new EventLog(options.stateDir);
    this.log = options.logger;
  }

  /** Loads persisted VMs and re-attaches to the helpers that still run. */
  async init(): Promise<void> {
    const records = this.store.loadAll((vmId, err) => this.log.error({ vm_id: vmId, err }, "unreadable VM record skipped"));
    await Promise.all(
      records.map(async (record) => {
        const entry = this.newEntry(record);
        this.vms.set(record.vmId, entry);
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
      }),
    );
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
    const done = this.doCreate(vmId, requestId, req);
    this.creating.set(vmId, { requestId, done });
    try {
      return await done;
    } finally {
      this.creating.delete(vmId);
    }
  }

  private async doCreate(vmId: string, requestId: string, req: SpecRequest): Promise<VmRecord> {
    const limits = await this.options.hostLimits();
    if ("unavailable" in limits) throw failedPrecondition(`cannot create VMs on this host: ${limits.unavailable}`);
    const { spec, image } = validateSpec(vmId, req, limits, (b) => createHash("sha256").update(b).digest("hex"));
    if (image) this.store.saveImage(vmId, image);
    const vmLog = this.vmLog(vmId);
    let link: HelperLink;
    try {
      this.store.prepare(vmId);
      const file = this.store.secretPath(vmId);
      link = await this.options.launcher.launch(vmId, spec, this.store.imagePath(vmId), { file, value: createSecret(file) }, vmLog);
    } catch (err) {
      this.store.remove(vmId);
      throw err;
    }
    const now = new Date().toISOString();
    const record: VmRecord = {
      vmId,
      requestId,
      spec,
      state: "CREATED",
      stateReason: "",
      createdAt: now,
      stateChangedAt: now,
      helperPid: link.pid,
      controlSocket: link.socketPath,
      lastEventSequence: 0,
      sandbox: link.client.hello?.sandbox,
    };
    const entry = this.newEntry(record);
    this.vms.set(vmId, entry);
    this.adopt(entry, link);
    this.emit(entry, "CREATED", "created");
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
    const e = this.entry(vmId);
    await this.serial(e, async () => {
      if ((e.record.state === "RUNNING" || e.record.state === "PAUSED") && !force) {
        throw failedPrecondition(`cannot delete VM '${vmId}': it is ${e.record.state}; stop it first or pass force`);
      }
      if (e.unreachable) await this.killUnreachable(e, "killed for deletion: the helper could not be controlled");
      else if (LIVE_STATES.includes(e.record.state)) await this.stopHelper(e, 0, "stopped for deletion");
      this.vms.delete(vmId);
      this.store.remove(vmId);
      this.emit(e, "DELETED", "deleted", "DELETED");
      this.vmLog(vmId).info("VM deleted");
    });
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
  private lifecycle(vmId: string, allowed: readonly VmState[], action: string, op: (e: VmEntry) => Promise<void>): Promise<VmRecord> {
    const e = this.entry(vmId);
    return this.serial(e, async () => {
      requireState(vmId, e.record.state, allowed, action);
      await op(e);
      return e.record;
    });
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

  private async stopHelper(e: VmEntry, timeoutMs: number, reason: string): Promise<void> {
    const link = this.link(e);
    const askedGuest = e.record.state === "RUNNING" && timeoutMs > 0;
    let done!: () => void;
    e.stopping = new Promise<void>((r) => (done = r));
    try {
      const result = await askHelper(() =>
        link.client.stop(timeoutMs).catch((err: unknown) => {
          if (link.client.closed) return { forced: true, exitStatus: -1 };
          throw err;
        }),
      );
      await link.exited;
      if (e.record.state !== "STOPPED" && e.record.state !== "CRASHED") {
        const why = askedGuest && result.forced ? `${reason}; the guest did not power off within ${timeoutMs} ms, so it was forced` : askedGuest ? `${reason}; the guest powered off` : reason;
        this.transition(e, "STOPPED", why, { helperPid: 0 });
      } else this.update(e, { helperPid: 0 });
    } finally {
      e.stopping = undefined;
      done();
    }
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
    if (this.vms.has(e.record.vmId)) this.store.save(e.record);
  }

  private emit(e: VmEntry, type: VmEventType, reason: string, state: VmState = e.record.state, previousState?: VmState): void {
    const event = this.events.append({ type, vmId: e.record.vmId, state, previousState, reason, vm: { ...e.record, lastEventSequence: this.events.lastSequence + 1 } });
    e.record = { ...e.record, lastEventSequence: event.sequence };
    if (this.vms.has(e.record.vmId)) this.store.save(e.record);
  }
}
