// The yardstick of `qumra bench migrate`: Debian's qemu-system-x86_64 live-migrating a firmware-only guest
// (SeaBIOS, no disk, no kernel) of a given memory size from one qemu process to another over loopback TCP,
// with qemu's own query-migrate figures beside the wall time we measure.
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { QmpClient } from "./qmp.js";
import { QEMU, qemuMissing } from "./spice-qemu.js";
import type { Teardown } from "./teardown.js";

const MiB = 1024 * 1024;
export const QEMU_MIGRATION_MIN_BYTES = 16 * MiB;
/** SeaBIOS's last words on its debug port (0x402) when nothing boots: the guest has run its firmware. */
const FIRMWARE_DONE = "No bootable device";
const FIRMWARE_TIMEOUT_MS = 60_000;
const MIGRATION_TIMEOUT_MS = 300_000;
const RUN_STATE_TIMEOUT_MS = 10_000;
/** How long to wait for a MIGRATION event before asking query-migrate anyway. */
const POLL_MS = 50;
/** qemu throttles migration to 32 MiB/s by default; qumra does not, so neither does the yardstick. */
const UNTHROTTLED_BYTES_PER_S = 2 ** 40;

export type QemuAccel = "kvm" | "tcg";

export interface QemuMigration {
  /** What qemu ran the guests with (query-kvm on the source). */
  accel: QemuAccel;
  memoryBytes: number;
  /** qemu's total-time: migrate command to completion, as the source saw it. */
  totalMs: number;
  /** qemu's downtime: the guest stopped on the source until the migration completed. */
  downtimeMs: number;
  /** qemu's setup-time. */
  setupMs: number;
  /** ram.transferred: RAM bytes sent, zero pages as a few bytes each. */
  transferredBytes: number;
  /** ram.total: the guest RAM qemu migrates (memoryBytes, give or take option ROM and firmware regions). */
  ramTotalBytes: number;
  /** ram.normal-bytes: bytes of pages sent whole. */
  normalBytes: number;
  /** ram.duplicate: pages sent as "all one byte" (zero pages, for an idle firmware guest). */
  duplicatePages: number;
  /** ram.mbps: qemu's throughput figure, megabits per second. */
  mbps: number;
  /** Measured by us: from sending `migrate` to seeing `completed`. */
  wallMs: number;
}

/** query-migrate's answer, the part we read. */
interface MigrateInfo {
  status?: string;
  "error-desc"?: string;
  "total-time"?: number;
  downtime?: number;
  "setup-time"?: number;
  ram?: { transferred: number; total: number; duplicate: number; "normal-bytes": number; mbps: number };
  "socket-address"?: { type: string; host?: string; port?: string }[];
}

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/**
 * Starts a destination qemu waiting for an incoming migration and a source qemu with the same machine
 * and memory, lets the source's SeaBIOS run to its end, migrates source → destination on loopback and
 * returns qemu's figures. Both processes are stopped by `teardown`. Throws if qemu is missing, either
 * side fails, or the migration fails (with qemu's reason).
 */
export async function measureQemuMigration(memoryBytes: number, teardown: Teardown): Promise<QemuMigration> {
  if (!Number.isSafeInteger(memoryBytes) || memoryBytes < QEMU_MIGRATION_MIN_BYTES || memoryBytes % MiB !== 0) {
    throw new RangeError(`memoryBytes must be a whole number of MiB, at least ${QEMU_MIGRATION_MIN_BYTES / MiB} MiB (got ${memoryBytes})`);
  }
  const missing = qemuMissing();
  if (missing) throw new Error(missing);

  const dir = mkdtempSync(path.join(tmpdir(), "qumra-bench-migrate-qemu-"));
  teardown.add("qemu migration sockets", () => rmSync(dir, { recursive: true, force: true }));
  const machine = machineArgs(memoryBytes);

  const destination = await startQemu("destination qemu", [...machine, "-chardev", "null,id=dbg", "-incoming", "defer"], dir, teardown);
  // Port 0: qemu picks a free port and tells it, so no other process can take it in between.
  await destination.qmp.execute("migrate-incoming", { uri: "tcp:127.0.0.1:0" });
  const port = listeningPort(await destination.qmp.execute<MigrateInfo>("query-migrate"));

  const source = await startQemu("source qemu", [...machine, "-chardev", "stdio,id=dbg"], dir, teardown);
  const kvm = await source.qmp.execute<{ enabled: boolean }>("query-kvm");
  await firmwareDone(source);
  await source.qmp.execute("migrate-set-capabilities", { capabilities: [{ capability: "events", state: true }] });
  await source.qmp.execute("migrate-set-parameters", { "max-bandwidth": UNTHROTTLED_BYTES_PER_S });

  const started = performance.now();
  await source.qmp.execute("migrate", { uri: `tcp:127.0.0.1:${port}` });
  const status = await untilTerminal(source.qmp, started);
  const wallMs = performance.now() - started;
  if (status !== "completed") {
    const why = (await source.qmp.execute<MigrateInfo>("query-migrate"))["error-desc"] ?? "qemu gave no reason";
    throw new Error(`qemu's migration ${status}: ${why}${destination.stderrTail() ? ` (destination: ${destination.stderrTail()})` : ""}`);
  }
  // qemu says "completed" a moment before it works out total-time, downtime and mbps (they read 0 until
  // then); the source enters postmigrate right after, so its figures are final from there on.
  await untilRunState(source, "postmigrate");
  const info = await source.qmp.execute<MigrateInfo>("query-migrate");
  await untilRunState(destination, "running");

  const ram = info.ram;
  if (!ram || info["total-time"] === undefined || info.downtime === undefined) {
    throw new Error(`qemu's query-migrate lacks its figures after completion: ${JSON.stringify(info)}`);
  }
  return {
    accel: kvm.enabled ? "kvm" : "tcg",
    memoryBytes,
    totalMs: info["total-time"],
    downtimeMs: info.downtime,
    setupMs: info["setup-time"] ?? 0,
    transferredBytes: ram.transferred,
    ramTotalBytes: ram.total,
    normalBytes: ram["normal-bytes"],
    duplicatePages: ram.duplicate,
    mbps: ram.mbps,
    wallMs,
  };
}

/** The same on both sides, as migration needs: machine, memory, devices (SeaBIOS's debug port only). */
function machineArgs(memoryBytes: number): string[] {
  return [
    "-accel", kvmUsable() ? "kvm" : "tcg",
    "-machine", "pc", "-nodefaults", "-display", "none", "-net", "none", "-monitor", "none", "-serial", "none",
    "-m", `${memoryBytes / MiB}M`,
    "-device", "isa-debugcon,iobase=0x402,chardev=dbg",
  ];
}

function kvmUsable(): boolean {
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

interface RunningQemu {
  what: string;
  child: ChildProcess;
  qmp: QmpClient;
  /** Rejects when the process exits, with its stderr. */
  exited: Promise<never>;
  stderrTail(): string;
}

/** Spawns qemu with a QMP socket in `dir` and connects to it; an exit before that throws with qemu's stderr. */
async function startQemu(what: string, args: string[], dir: string, teardown: Teardown): Promise<RunningQemu> {
  const qmpPath = path.join(dir, `${what.split(" ")[0]}.qmp`);
  const child = teardown.child(what, spawn(QEMU, [...args, "-qmp", `unix:${qmpPath},server=on,wait=off`], { stdio: ["ignore", "pipe", "pipe"] }));
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
  const stderrTail = () => stderr.trim().split("\n").filter((l) => !l.includes("warning:")).slice(-3).join("; ");
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code, signal) => reject(new Error(`${what} exited (${signal ?? code}): ${stderrTail() || "no message"}`))));
  exited.catch(() => {}); // raced against each wait below; an exit nobody waits for is teardown's business

  const qmp = await Promise.race([QmpClient.connect(qmpPath, what), exited]);
  teardown.add(`QMP of ${what}`, () => qmp.close());
  return { what, child, qmp, exited, stderrTail };
}

/** Resolves once SeaBIOS has said on its debug port (the source's stdout) that it found nothing to boot. */
async function firmwareDone(qemu: RunningQemu): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let debug = "";
  try {
    await Promise.race([
      qemu.exited,
      new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${qemu.what}: SeaBIOS did not finish within ${FIRMWARE_TIMEOUT_MS} ms`)), FIRMWARE_TIMEOUT_MS);
        qemu.child.stdout!.setEncoding("utf8").on("data", (d: string) => {
          debug = (debug + d).slice(-200);
          if (debug.includes(FIRMWARE_DONE)) resolve();
        });
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function listeningPort(info: MigrateInfo): number {
  const inet = info["socket-address"]?.find((a) => a.type === "inet");
  const port = Number(inet?.port);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`destination qemu did not say which port it listens on: ${JSON.stringify(info)}`);
  return port;
}

/** Waits for the source's migration to end (MIGRATION events, query-migrate when none comes) and says how. */
async function untilTerminal(qmp: QmpClient, started: number): Promise<string> {
  for (;;) {
    const event = await qmp.nextEvent((e) => e.event === "MIGRATION", POLL_MS);
    const status = event ? String(event.data?.status) : (await qmp.execute<MigrateInfo>("query-migrate")).status;
    if (status && TERMINAL.has(status)) return status;
    if (performance.now() - started > MIGRATION_TIMEOUT_MS) throw new Error(`qemu's migration still ${status} after ${MIGRATION_TIMEOUT_MS} ms`);
  }
}

/** Waits for `qemu`'s run state (query-status) to become `want`: the destination runs the guest once it
 * has loaded the last of its state, the source is postmigrate once its figures are final. */
async function untilRunState(qemu: RunningQemu, want: string): Promise<void> {
  const deadline = Date.now() + RUN_STATE_TIMEOUT_MS;
  let status = "";
  while (Date.now() < deadline) {
    status = (await qemu.qmp.execute<{ status: string }>("query-status")).status;
    if (status === want) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`${qemu.what} is ${status || "in an unknown state"}, not ${want}, ${RUN_STATE_TIMEOUT_MS} ms after the migration completed`);
}
