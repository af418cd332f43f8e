// The yardstick of `qumra bench boot`: Debian's qemu-system-x86_64 (-M microvm, KVM) booting a Linux
// kernel given to -kernel (an ELF vmlinux through its PVH entry, or a bzImage), its serial console on stdout, timed
// milestone by milestone from just before the spawn.
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CONSOLE_SETTLE_MS, INIT_MARKER, MilestoneClock } from "./boot-milestones.js";
import { QmpClient } from "./qmp.js";
import { QEMU } from "./spice-qemu.js";

export interface BootRun {
  /** ms from t0 to the first sight of each milestone reached (BOOT_MILESTONES names). */
  milestones: Record<string, number>;
  furthest?: string;
  end: "init-marker" | "stopped" | "timeout" | "exited";
  endDetail: string;
  console: string;
  totalMs: number;
}

/** What both sides of bench boot boot, and for how long. */
export interface LinuxBootTarget {
  /** An ELF vmlinux with a PVH note (qemu boots it through PVH, as we do) or a bzImage (qemu loads it its own way). */
  kernel: string;
  initrd?: string;
  cmdline: string;
  memoryBytes: number;
  vcpus: number;
  timeoutMs: number;
}

export interface QemuBootOptions extends LinuxBootTarget {
  signal?: AbortSignal;
  /** Called as each milestone is first seen (for a progress bar). */
  onMilestone?: (name: string) => void;
}

/** qemu's run states that mean the guest will not print any more by itself. */
const HALTED_STATES = new Set(["internal-error", "guest-panicked", "shutdown", "io-error"]);
/** How often query-status is asked: a boot takes tens of seconds, a second of slack is plenty. */
const STATUS_POLL_MS = 1000;

/** Why qemu cannot boot a kernel with KVM here, or undefined when it can. */
export function qemuBootMissing(): string | undefined {
  if (spawnSync(QEMU, ["--version"]).status !== 0) return `${QEMU} is missing (apt install qemu-system-x86)`;
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch (err) {
    return `/dev/kvm is not usable (${(err as NodeJS.ErrnoException).code}): qemu's yardstick runs with -enable-kvm only`;
  }
  return undefined;
}

/** kvm-pvm (a host that is itself a VM) does not complete CMPXCHG16B: hide it, as our helper does there. */
export function qemuCpu(): string {
  return existsSync("/sys/module/kvm_pvm") ? "qemu64,-cx16" : "host";
}

export function qemuBootArgs(o: QemuBootOptions, qmpSocket: string): string[] {
  return [
    "-M", "microvm", "-enable-kvm", "-cpu", qemuCpu(),
    "-m", `${Math.floor(o.memoryBytes / (1 << 20))}M`, "-smp", String(o.vcpus),
    "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
    "-qmp", `unix:${qmpSocket},server=on,wait=off`,
    "-kernel", o.kernel, ...(o.initrd ? ["-initrd", o.initrd] : []), "-append", o.cmdline,
  ];
}

/**
 * Boots `o.kernel` in qemu until the init marker, until the guest halts (qemu reports a KVM internal
 * error and pauses, or its run state says it stopped), until qemu exits, or for `o.timeoutMs`. qemu is
 * always killed and its temp dir removed.
 */
export async function bootQemu(o: QemuBootOptions): Promise<BootRun> {
  const dir = mkdtempSync(path.join(tmpdir(), "qumra-bench-boot-qemu-"));
  const qmpSocket = path.join(dir, "qmp.sock");
  const t0 = Date.now();
  const clock = new MilestoneClock(t0);
  const child = spawn(QEMU, qemuBootArgs(o, qmpSocket), { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let qmp: QmpClient | undefined;
  let poll: NodeJS.Timeout | undefined;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  let finished = false;
  /** When qemu said the guest halted: the end, though the console gets a moment more to drain. */
  let haltedAt: number | undefined;
  try {
    const ended = await new Promise<{ end: BootRun["end"]; detail: string }>((resolve) => {
      // The guest will print no more; its last serial bytes (another pipe) get a moment to arrive.
      const halted = (detail: string) => {
        if (haltedAt !== undefined) return;
        haltedAt = Date.now();
        setTimeout(() => resolve({ end: "stopped", detail }), CONSOLE_SETTLE_MS);
      };
      child.stdout.setEncoding("latin1");
      child.stdout.on("data", (chunk: string) => {
        const before = Object.keys(clock.reached());
        clock.feed(chunk);
        for (const name of Object.keys(clock.reached())) if (!before.includes(name)) o.onMilestone?.(name);
        if (clock.has(INIT_MARKER.name)) resolve({ end: "init-marker", detail: `${INIT_MARKER.pattern.source} on the serial console` });
      });
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (chunk: string) => {
        stderr += chunk;
        const internal = /KVM internal error[^\n]*/.exec(stderr);
        if (internal) halted(`qemu: ${internal[0].trim()} (the guest is paused)`);
      });
      child.on("error", (err) => resolve({ end: "exited", detail: `${QEMU} did not start: ${err.message}` }));
      // "close", not "exit": by then its stdout and stderr are read to the end.
      child.on("close", (code, signal) => {
        const last = stderr.trim().split("\n").filter((l) => !/warning: host doesn't support/.test(l)).at(-1);
        resolve({ end: "exited", detail: `${QEMU} exited (${signal ?? `code ${code}`})${last ? `: ${last.trim()}` : ""}` });
      });
      timer = setTimeout(() => resolve({ end: "timeout", detail: `no init marker within ${o.timeoutMs} ms` }), o.timeoutMs);
      onAbort = () => resolve({ end: "timeout", detail: "interrupted" });
      if (o.signal?.aborted) onAbort();
      o.signal?.addEventListener("abort", onAbort, { once: true });
      // The run state catches halts qemu does not print (a shutdown it is told not to exit on, a panic).
      void QmpClient.connect(qmpSocket, "boot qemu", 10_000).then(
        (client) => {
          if (finished) return client.close();
          qmp = client;
          poll = setInterval(() => {
            client.execute<{ status: string }>("query-status").then(
              (s) => HALTED_STATES.has(s.status) && halted(`qemu run state ${s.status}`),
              () => undefined,
            );
          }, STATUS_POLL_MS);
        },
        () => undefined,
      );
    });
    const endedAt = ended.end === "stopped" ? haltedAt! : Date.now();
    return { milestones: clock.reached(), furthest: clock.furthest(), end: ended.end, endDetail: ended.detail, console: clock.text(), totalMs: endedAt - t0 };
  } finally {
    finished = true;
    clearTimeout(timer);
    clearInterval(poll);
    if (onAbort) o.signal?.removeEventListener("abort", onAbort);
    qmp?.close();
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGKILL");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
