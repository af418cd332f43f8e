// The agent's link to one helper process: its control connection plus supervision of the process.
// A helper the agent spawned is its child, so its exit status is known; a helper found again after an
// agent restart is not, so its end is seen as the control socket closing and the pid disappearing.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../logger.js";
import { QumraError } from "../errors.js";
import { HelperExit } from "../gen/helper-abi.js";
import { HelperClient } from "./helper-client.js";
import { helperArgsOf } from "./helper-convert.js";
import { HelperError, helperErrorKind } from "./helper-errors.js";
import { spawnHelper, isAlive, type HelperSandboxOptions } from "./helper-process.js";
import type { VmSpec } from "./types.js";

export interface HelperLauncher {
  launch(vmId: string, spec: VmSpec, imagePath: string, log: Logger): Promise<HelperLink>;
  reattach(vmId: string, pid: number, socketPath: string, log: Logger): Promise<HelperLink>;
}

type ExitInfo = { code: number | null; signal: NodeJS.Signals | null };

const EXIT_MEANING: Record<number, string> = {
  [HelperExit.CLEAN]: "exited cleanly",
  [HelperExit.SETUP]: "failed to set the VM up",
  [HelperExit.FORCED]: "was stopped by force",
  [HelperExit.CRASHED]: "exited after the guest crashed",
  [HelperExit.INTERNAL]: "failed internally",
};

export class HelperLink {
  /** Resolves when the helper process is gone (or the agent detached from it). */
  readonly exited: Promise<void>;
  private readonly exitListeners: ((why: string) => void)[] = [];
  private detached = false;
  private markExited!: () => void;

  constructor(
    readonly pid: number,
    readonly socketPath: string,
    readonly client: HelperClient,
    /** Whether the helper has a framebuffer device (it answers DISPLAY_INFO). */
    readonly hasFramebuffer: boolean,
    private readonly log: Logger,
    childExit?: Promise<ExitInfo>,
  ) {
    this.exited = new Promise((resolve) => (this.markExited = resolve));
    let reported = false;
    const report = (why: string) => {
      if (reported) return;
      reported = true;
      this.markExited();
      if (!this.detached) for (const l of this.exitListeners) l(why);
    };
    childExit?.then((e) => report(describeExit(pid, e)));
    client.on("close", () => {
      if (this.detached) return report("detached");
      // Give a child's exit status a moment to arrive: it says more than a closed socket.
      void waitForExit(pid, childExit ? 2000 : 1000).then((gone) => {
        if (gone) return report(childExit ? "" : `helper process ${pid} exited`);
        this.log.error({ pid }, "helper closed its control socket but still runs: killing it");
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* already gone */
        }
        report(`helper process ${pid} stopped answering on its control socket and was killed`);
      });
    });
  }

  onExit(listener: (why: string) => void): void {
    this.exitListeners.push(listener);
  }

  /** Closes the control connection but leaves the helper running (agent shutdown). */
  detach(): void {
    this.detached = true;
    this.client.close();
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
}

function describeExit(pid: number, e: ExitInfo): string {
  // SECCOMP_RET_KILL_PROCESS ends the helper with SIGSYS (nothing else in it raises SIGSYS).
  if (e.signal === "SIGSYS") return `helper process ${pid} was killed by seccomp (forbidden syscall, signal SIGSYS)`;
  if (e.signal) return `helper process ${pid} was killed by signal ${e.signal}`;
  const meaning = e.code !== null ? EXIT_MEANING[e.code] : undefined;
  return `helper process ${pid} ${meaning ?? "exited"} (status ${e.code})`;
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !isAlive(pid);
}

/** Starts helpers under the runtime dir (one folder per VM) and finds them again after a restart. */
export class ProcessLauncher implements HelperLauncher {
  constructor(
    private readonly runtimeDir: string,
    private readonly vmmPath: string,
    /** The helpers' sandbox (default: on, as the agent's uid). */
    private readonly sandbox: HelperSandboxOptions = { enabled: true },
  ) {}

  async launch(vmId: string, spec: VmSpec, imagePath: string, log: Logger): Promise<HelperLink> {
    const vmDir = path.join(this.runtimeDir, vmId);
    let spawned;
    try {
      spawned = await spawnHelper({ binary: this.vmmPath, runtimeDir: vmDir, args: helperArgsOf(spec, imagePath), sandbox: this.sandbox });
    } catch (err) {
      throw helperFailure(err, "start the VM's helper");
    }
    let client: HelperClient | undefined;
    try {
      client = await HelperClient.connect(spawned.controlPath);
      return new HelperLink(spawned.pid, spawned.controlPath, client, await probeFramebuffer(client), log, spawned.exit);
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

  async reattach(_vmId: string, pid: number, socketPath: string, log: Logger): Promise<HelperLink> {
    if (!pid || !isAlive(pid)) throw new Error(`no process ${pid}`);
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.includes(socketPath)) throw new Error(`process ${pid} is not the helper of ${socketPath}`);
    const client = await HelperClient.connect(socketPath);
    try {
      return new HelperLink(pid, socketPath, client, await probeFramebuffer(client), log);
    } catch (err) {
      client.close();
      throw err;
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
