// The agent's link to one helper process: its control connection plus supervision of the process.
// A helper the agent spawned is its child, so its exit status is known; a helper found again after an
// agent restart is not, so its end is seen as the control socket closing and the pid disappearing.
// A control connection that closes while the helper still runs is connected again (with the VM's
// secret): the helper is never killed merely because its socket closed.
import { EventEmitter } from "node:events";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../logger.js";
import { QumraError } from "../errors.js";
import { HelperExit } from "../gen/helper-abi.js";
import { HelperClient } from "./helper-client.js";
import { helperArgsOf } from "./helper-convert.js";
import { HelperError, helperErrorKind } from "./helper-errors.js";
import { spawnHelper, exitRecordOf, isAlive, isHelperOf, isStopped, type HelperSandboxOptions } from "./helper-process.js";
import type { HelperEvent, HelperStatus } from "./helper-protocol.js";
import type { VmSpec } from "./types.js";
import type { VmCgroups } from "./cgroups.js";

/** A VM's control secret: the file the helper was given and its content (control-secret.ts). */
export interface ControlSecret {
  file: string;
  value: string;
}

export interface HelperLauncher {
  launch(vmId: string, spec: VmSpec, imagePath: string, secret: ControlSecret, log: Logger): Promise<HelperLink>;
  reattach(vmId: string, pid: number, socketPath: string, secret: ControlSecret, log: Logger): Promise<HelperLink>;
}

type ExitInfo = { code: number | null; signal: NodeJS.Signals | null };

const EXIT_MEANING: Record<number, string> = {
  [HelperExit.CLEAN]: "exited cleanly",
  [HelperExit.SETUP]: "failed to set the VM up",
  [HelperExit.FORCED]: "was stopped by force",
  [HelperExit.CRASHED]: "exited after the guest crashed",
  [HelperExit.INTERNAL]: "failed internally",
};

/** How a lost control connection is recovered. */
export interface ReconnectPolicy {
  /** How long to wait for the helper's exit before treating a closed socket as a lost connection. */
  exitGraceMs: number;
  /** Pauses between reconnect attempts; their number is the number of attempts after the first. */
  backoffMs: readonly number[];
}

/** About 5 s of attempts: a helper whose loop is alive answers at once; one that is wedged does not. */
export const DEFAULT_RECONNECT: ReconnectPolicy = { exitGraceMs: 500, backoffMs: [100, 200, 400, 800, 1500, 2000] };

/** A request unanswered for this long marks the helper as not answering (GetVm shows it). */
export const NOT_ANSWERING_AFTER_MS = 2000;

/** Why a helper is considered hung: it is stopped, or it has not answered since `since`. */
export interface HelperHang {
  since: Date;
  reason: string;
  /** Stopped by a signal (or a debugger): it cannot answer anything until continued. */
  stopped: boolean;
}

/** What a forced end of a helper did: how it ended, and the signals it took. */
export interface Termination {
  signals: ("SIGTERM" | "SIGKILL")[];
  gone: boolean;
}

export interface HelperLinkEvents {
  /** Console output and events of the helper, from whichever connection is current. */
  console: [Buffer];
  event: [HelperEvent];
  /** The connection was lost and made again; the helper's status at the new HELLO (resync from it). */
  reconnected: [HelperStatus];
}

export class HelperLink extends EventEmitter<HelperLinkEvents> {
  /** Resolves when the helper process is gone (or the agent detached from it). */
  readonly exited: Promise<void>;
  /** Resolves with why once the link has ended (exited resolved). */
  readonly ended: Promise<string>;
  private readonly exitListeners: ((why: string) => void)[] = [];
  private detached = false;
  private reported = false;
  /** Why the helper dropped this agent for another client with the secret, if it did. */
  private replacedBy: string | undefined;
  private current: HelperClient;
  private markEnded!: (why: string) => void;
  /** When the helper was first seen stopped (state T in /proc), cleared once it runs again. */
  private stoppedSeenAt: number | undefined;

  constructor(
    readonly pid: number,
    readonly socketPath: string,
    client: HelperClient,
    /** Whether the helper has a framebuffer device (it answers DISPLAY_INFO). */
    readonly hasFramebuffer: boolean,
    private readonly secret: string,
    private readonly log: Logger,
    private readonly childExit?: Promise<ExitInfo>,
    private readonly policy: ReconnectPolicy = DEFAULT_RECONNECT,
  ) {
    super();
    this.ended = new Promise((resolve) => (this.markEnded = resolve));
    this.exited = this.ended.then(() => undefined);
    this.current = client;
    childExit?.then((e) => this.report(describeExit(pid, e)));
    this.listen(client);
  }

  /**
   * Set when the helper gave control to another client that knows the VM's secret (a second agent on
   * the same state dir, an operator): the link then ends without connecting again, so that two
   * controllers do not take the helper from each other for ever; the helper keeps running.
   */
  get takenOver(): string | undefined {
    return this.replacedBy;
  }

  /** The current control connection (a new one after a reconnect). */
  get client(): HelperClient {
    return this.current;
  }

  /**
   * The connection to send on: the current one, or, while a lost one is being made again, the new
   * one once it is there (or the closed one once the link has ended, whose requests then fail).
   */
  async usable(): Promise<HelperClient> {
    if (!this.current.closed || this.reported) return this.current;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.off("reconnected", done);
        resolve();
      };
      this.once("reconnected", done);
      void this.ended.then(done);
    });
    return this.current;
  }

  /**
   * Whether the helper is hung: stopped (SIGSTOP, a debugger), or a request has gone unanswered for
   * NOT_ANSWERING_AFTER_MS or timed out with nothing heard since. Undefined when it answers or has ended.
   */
  hang(): HelperHang | undefined {
    if (this.reported) return undefined;
    if (isStopped(this.pid)) {
      this.stoppedSeenAt ??= Date.now();
      return { since: new Date(this.stoppedSeenAt), stopped: true, reason: `helper pid ${this.pid} is stopped (SIGSTOP or a debugger) and cannot answer; stop or delete the VM with force to kill it` };
    }
    this.stoppedSeenAt = undefined;
    const since = this.current.notAnsweringSince(NOT_ANSWERING_AFTER_MS);
    if (since === undefined) return undefined;
    return { since: new Date(since), stopped: false, reason: `helper pid ${this.pid} has not answered since ${new Date(since).toISOString()} (hung?); stop or delete the VM with force to kill it` };
  }

  /**
   * Ends the helper by signals: SIGTERM (and SIGCONT, so a stopped helper can act on it), then SIGKILL
   * after graceMs, which works on a stopped process too. The pid is checked to be this VM's helper first,
   * so a reused pid is never signalled. Resolves once the helper is gone or waitMs after the SIGKILL.
   */
  async terminate(graceMs = 1000, waitMs = 2000): Promise<Termination> {
    const signals: Termination["signals"] = [];
    const send = async (signal: "SIGTERM" | "SIGKILL" | "SIGCONT"): Promise<boolean> => {
      if (!(await isHelperOf(this.pid, this.socketPath))) return false;
      try {
        process.kill(this.pid, signal);
      } catch {
        return false;
      }
      if (signal !== "SIGCONT") signals.push(signal);
      return true;
    };
    if (await send("SIGTERM")) {
      await send("SIGCONT");
      if (!(await this.waitForExit(graceMs)) && (await send("SIGKILL"))) {
        this.log.warn({ pid: this.pid, grace_ms: graceMs }, "the helper did not end on SIGTERM: killed it");
        await this.waitForExit(waitMs);
      }
    }
    const gone = !isAlive(this.pid);
    // Dead is not yet reaped: wait (briefly) for the link to report the end, so that a child of this
    // agent is waited for and no zombie is left behind when the caller answers.
    if (gone) await Promise.race([this.ended, new Promise((r) => setTimeout(r, waitMs))]);
    return { signals, gone };
  }

  onExit(listener: (why: string) => void): void {
    this.exitListeners.push(listener);
  }

  /** Closes the control connection but leaves the helper running (agent shutdown). */
  detach(): void {
    this.detached = true;
    this.current.close();
    this.report("detached"); // also when no connection was open (in the middle of a reconnect)
  }

  /** Resident memory and CPU time of the helper process, from /proc. */
  async usage(): Promise<{ helperRssBytes: number; helperCpuUserMs: number; helperCpuSystemMs: number }> {
    try {
      const [status, stat] = await Promise.all([readFile(`/proc/${this.pid}/status`, "utf8"), readFile(`/proc/${this.pid}/stat`, "utf8")]);
      const rssKib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ticksToMs = 1000 / 100;
      return { helperRssBytes: rssKib * 1024, helperCpuUserMs: Number(fields[11]) * ticksToMs, helperCpuSystemMs: Number(fields[12]) * ticksToMs };
    } catch {
      return { helperRssBytes: 0, helperCpuUserMs: 0, helperCpuSystemMs: 0 };
    }
  }

  private listen(client: HelperClient): void {
    client.on("console", (data) => {
      if (client === this.current) this.emit("console", data);
    });
    client.on("event", (event) => {
      if (client !== this.current) return;
      if (event.kind === "replaced") this.replacedBy = event.reason || "another client took control";
      this.emit("event", event);
    });
    client.on("close", () => {
      if (client !== this.current) return;
      if (this.detached) return this.report("detached");
      if (this.replacedBy) {
        this.log.error({ pid: this.pid, why: this.replacedBy }, "the helper gave control of the VM to another client; not connecting again");
        return this.report(`helper process ${this.pid} gave control to another client (${this.replacedBy}); it still runs`);
      }
      void this.recover();
    });
  }

  private report(why: string): void {
    if (this.reported) return;
    this.reported = true;
    this.markEnded(why);
    if (!this.detached) for (const l of this.exitListeners) l(why);
  }

  /** The socket closed: an exiting helper is reported; a running one is connected to again. */
  private async recover(): Promise<void> {
    // A child's exit status says more than a closed socket: give it a moment to arrive.
    if (await this.waitForExit(this.policy.exitGraceMs)) return this.reportGone();
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.policy.backoffMs.length; attempt++) {
      if (this.reported || this.detached) return;
      if (!isAlive(this.pid)) return this.reportGone();
      try {
        const client = await HelperClient.connect(this.socketPath, { secret: this.secret, connectTimeoutMs: 2000, pid: this.pid });
        if (this.reported || this.detached) return client.close();
        this.current = client;
        this.listen(client);
        this.log.warn({ pid: this.pid, attempt }, "the helper's control connection was lost while it ran; connected again");
        this.emit("reconnected", client.hello!);
        return;
      } catch (err) {
        lastError = err;
        // The helper refused the secret: trying again cannot help.
        if (err instanceof HelperError && err.code === "AUTH") break;
      }
      if (attempt < this.policy.backoffMs.length && (await this.waitForExit(this.policy.backoffMs[attempt]))) return this.reportGone();
    }
    if (this.reported || this.detached) return;
    if (!isAlive(this.pid)) return this.reportGone();
    // It runs but cannot be controlled: nothing could ever stop it, so it is stopped here, and the
    // VM is reported CRASHED with the reason.
    const why = lastError instanceof Error ? lastError.message : String(lastError);
    this.log.error({ pid: this.pid, err: lastError }, "the helper's control socket cannot be reached again: killing the helper");
    try {
      process.kill(this.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
    this.report(`helper process ${this.pid} still ran but its control socket could not be reached again (${why}); it was killed`);
  }

  private reportGone(): void {
    // A child's own exit handler reports its status. A helper found after a restart is not our child,
    // so its status is unknown to waitpid; the helper logs it as its last word, unless SIGKILL (or a
    // crash) gave it no chance to.
    if (this.childExit) return;
    const record = exitRecordOf(this.pid, this.socketPath);
    if (record) {
      const meaning = EXIT_MEANING[record.status];
      this.report(`helper process ${this.pid} ${meaning ?? "exited"} (status ${record.status}, from its log)`);
    } else this.report(`helper process ${this.pid} was killed (SIGKILL or a crash): it left no exit record in its log`);
  }

  /** True once the helper is gone (or the link has ended), waiting at most ms. */
  async waitForExit(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.reported || !isAlive(this.pid)) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise((r) => setTimeout(r, Math.min(25, left)));
    }
  }
}

function describeExit(pid: number, e: ExitInfo): string {
  // SECCOMP_RET_KILL_PROCESS ends the helper with SIGSYS (nothing else in it raises SIGSYS).
  if (e.signal === "SIGSYS") return `helper process ${pid} was killed by seccomp (forbidden syscall, signal SIGSYS)`;
  if (e.signal) return `helper process ${pid} was killed by signal ${e.signal}`;
  const meaning = e.code !== null ? EXIT_MEANING[e.code] : undefined;
  return `helper process ${pid} ${meaning ?? "exited"} (status ${e.code})`;
}

/** Starts helpers under the runtime dir (one folder per VM) and finds them again after a restart. */
export class ProcessLauncher implements HelperLauncher {
  constructor(
    private readonly runtimeDir: string,
    private readonly vmmPath: string,
    /** The helpers' sandbox (default: on, as the agent's uid). */
    private readonly sandbox: HelperSandboxOptions = { enabled: true },
    /** Per-VM cgroups the helpers are moved into (cgroups.ts); none: helpers stay in the agent's. */
    private readonly cgroups?: VmCgroups,
    /** --images-dir: where a Linux VM's kernel and initrd are. */
    private readonly imagesDir = "",
  ) {}

  async launch(vmId: string, spec: VmSpec, imagePath: string, secret: ControlSecret, log: Logger): Promise<HelperLink> {
    const vmDir = path.join(this.runtimeDir, vmId);
    let spawned;
    const args = helperArgsOf(spec, imagePath, this.imagesDir); // a refused path: INVALID_ARGUMENT
    try {
      spawned = await spawnHelper({ binary: this.vmmPath, runtimeDir: vmDir, secretFile: secret.file, args, sandbox: this.sandbox });
    } catch (err) {
      throw helperFailure(err, "start the VM's helper");
    }
    // The cgroup goes when the helper has gone (a populated cgroup cannot be removed).
    void spawned.exit.then(() => this.cgroups?.remove(vmId, 5));
    try {
      // Before the VM is started: its guest never runs outside its limits.
      this.cgroups?.place(vmId, spec, spawned.pid);
    } catch (err) {
      killQuietly(spawned.pid);
      throw err;
    }
    let client: HelperClient | undefined;
    try {
      client = await connectFresh(spawned.controlPath, secret.value, spawned.pid);
      return new HelperLink(spawned.pid, spawned.controlPath, client, await probeFramebuffer(client), secret.value, log, spawned.exit);
    } catch (err) {
      client?.close();
      try {
        process.kill(spawned.pid, "SIGKILL");
      } catch {
        /* gone */
      }
      throw helperFailure(err, "connect to the VM's helper");
    }
  }

  async reattach(vmId: string, pid: number, socketPath: string, secret: ControlSecret, log: Logger): Promise<HelperLink> {
    if (!pid || !isAlive(pid)) throw new Error(`no process ${pid}`);
    if (!(await isHelperOf(pid, socketPath))) throw new Error(`process ${pid} is not the helper of ${socketPath}`);
    const client = await HelperClient.connect(socketPath, { secret: secret.value, pid });
    try {
      const link = new HelperLink(pid, socketPath, client, await probeFramebuffer(client), secret.value, log);
      void link.exited.then(() => this.cgroups?.remove(vmId, 5));
      return link;
    } catch (err) {
      client.close();
      throw err;
    }
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* gone */
  }
}

/**
 * The first connection to a new helper. The helper drops a connection whose HELLO does not come within
 * its auth timeout (2 s), which a busy agent (many creates at once) can miss: while the helper lives,
 * a dropped first connection is made again, a few times.
 */
async function connectFresh(socketPath: string, secret: string, pid: number): Promise<HelperClient> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await HelperClient.connect(socketPath, { secret, pid });
    } catch (err) {
      const dropped = err instanceof HelperError && (err.code === "CONNECT_FAILED" || err.code === "CONNECTION_CLOSED");
      if (!dropped || attempt >= 3 || !isAlive(pid)) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

/** Asked once, at attach: a helper without a framebuffer device does not know DISPLAY_INFO. */
export async function probeFramebuffer(client: HelperClient): Promise<boolean> {
  try {
    await client.displayInfo();
    return true;
  } catch (err) {
    if (err instanceof HelperError && err.code === "UNKNOWN_TYPE") return false;
    throw err;
  }
}

/** Why a helper could not be started or reached, as the agent's typed error (same kinds as its answers). */
function helperFailure(err: unknown, action: string): QumraError {
  const message = err instanceof Error ? err.message : String(err);
  return new QumraError(err instanceof HelperError ? helperErrorKind(err.code) : "internal", `could not ${action}: ${message}`, { cause: err });
}
