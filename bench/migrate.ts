// `qumra bench migrate`: live migration of a demo VM between two agents on this host (each with its own
// state and runtime dir, over the destination's unix socket), per guest memory size and dirty rate:
// total time, downtime and bytes sent. With --vs-qemu, Debian's qemu migrating a firmware-only guest of
// the same memory size between two qemu processes on loopback, in the same run, is the yardstick.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { packageRoot } from "../agent/src/paths.js";
import { MigrationPhase, VmServiceClient, type MigrationProgress } from "../agent/src/gen/qumra/v1/vm.js";
import type { Progress } from "../agent/src/cli/progress.js";
import { openConsole } from "./console-reader.js";
import { measureQemuMigration, type QemuMigration } from "./migrate-qemu.js";
import type { Teardown } from "./teardown.js";

/** The demo guest's dirty rates: its console key, and the bytes per second it writes (pages × 4 KiB × 100 Hz). */
export const DIRTY_RATES: readonly { key: string; bytesPerSecond: number }[] = [
  { key: "0", bytesPerSecond: 0 },
  { key: "1", bytesPerSecond: 16 * 4096 * 100 },
  { key: "2", bytesPerSecond: 64 * 4096 * 100 },
  { key: "3", bytesPerSecond: 256 * 4096 * 100 },
];

export interface MigrateBenchOptions {
  memoryBytes: number[];
  dirtyBytesPerSecond: number[];
  maxDowntimeMs: number;
  vsQemu: boolean;
}

export interface MigrateBenchRow {
  memoryBytes: number;
  dirtyBytesPerSecond: number;
  totalMs: number;
  downtimeMs: number;
  bytesSent: number;
  rounds: number;
  transferBytesPerSecond: number;
  /** Where the downtime went (MigrationProgress.downtime_parts_ms). */
  downtimePartsMs: Record<string, number>;
  /** The yardstick of the same memory size (an idle guest), when measured. */
  qemu?: QemuMigration;
}

export interface MigrateBenchResult {
  rows: MigrateBenchRow[];
  qemu: QemuMigration[];
}

interface BenchAgent {
  socket: string;
  vms: VmServiceClient;
}

async function startAgent(name: string, teardown: Teardown): Promise<BenchAgent> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `qumra-bench-migrate-${name}-`));
  teardown.add(`agent ${name} dirs`, () => rmSync(dir, { recursive: true, force: true }));
  const socket = path.join(dir, "run", "qumra.sock");
  const args = [path.join(packageRoot, "bin", "qumra-agent.js"), "--unix", socket, "--state-dir", path.join(dir, "state"), "--runtime-dir", path.join(dir, "run"), "--log-level", "warn", "--display-workers", "0"];
  // Own process group: Ctrl-C must not stop the agents before teardown deleted their VMs through them.
  const child = teardown.child(`qumra-agent ${name}`, spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], detached: true }));
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const vms = new VmServiceClient(`unix:${socket}`, grpc.credentials.createInsecure());
  teardown.add(`agent ${name} client`, () => vms.close());
  await new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 20_000;
    const poll = () =>
      vms.listVms({ state: 0, labelSelector: {} }, (err) => {
        if (!err) return resolve();
        if (child.exitCode !== null || Date.now() > deadline) return reject(new Error(`qumra-agent ${name} did not start: ${output.trim().split("\n").at(-1) ?? ""}`));
        setTimeout(poll, 100);
      });
    poll();
  });
  return { socket, vms };
}

function unary<Req, Res>(fn: (req: Req, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res))));
}

/** One migration of a fresh demo VM of `memoryBytes` dirtying `rate` from `from` to `to`. */
async function migrateOnce(from: BenchAgent, to: BenchAgent, memoryBytes: number, rate: { key: string; bytesPerSecond: number }, maxDowntimeMs: number): Promise<MigrateBenchRow> {
  const vmId = `bench-mig-${randomUUID().slice(0, 8)}`;
  await unary(from.vms.createVm.bind(from.vms), { vmId, requestId: randomUUID(), spec: { name: vmId, vcpus: 1, memoryBytes: BigInt(memoryBytes), boot: { $case: "demo", value: {} }, display: { width: 640, height: 480 }, labels: {}, imageCompression: 0, cpuWeight: 0 } });
  try {
    const con = openConsole(from.vms, vmId);
    await unary(from.vms.startVm.bind(from.vms), { vmId });
    await con.waitFor("qumra demo guest", 60_000);
    con.send(rate.key);
    await con.waitFor(`dirty ${rate.bytesPerSecond / (4096 * 100)}\n`, 30_000);
    // A second of writing before the copy starts, so the dirty set is warm.
    await new Promise((r) => setTimeout(r, 1000));
    con.close();
    const last = await new Promise<MigrationProgress>((resolve, reject) => {
      let final: MigrationProgress | undefined;
      const stream = from.vms.migrateVm({ vmId, destination: `unix:${to.socket}`, tls: undefined, maxDowntimeMs, maxBandwidthBytesPerSecond: 0n, maxRounds: 0 });
      stream.on("data", (p: MigrationProgress) => (final = p));
      stream.on("error", reject);
      stream.on("end", () => (final?.phase === MigrationPhase.MIGRATION_PHASE_COMPLETED ? resolve(final) : reject(new Error("the migration stream ended before COMPLETED"))));
    });
    return {
      memoryBytes,
      dirtyBytesPerSecond: rate.bytesPerSecond,
      totalMs: last.totalMs,
      downtimeMs: last.downtimeMs,
      bytesSent: Number(last.bytesSent),
      rounds: last.round,
      transferBytesPerSecond: Number(last.transferBytesPerSecond),
      downtimePartsMs: last.downtimePartsMs,
    };
  } finally {
    // Wherever it is now, it goes.
    await unary(to.vms.deleteVm.bind(to.vms), { vmId, force: true }).catch(() => undefined);
    await unary(from.vms.deleteVm.bind(from.vms), { vmId, force: true }).catch(() => undefined);
  }
}

export async function runMigrateBench(o: MigrateBenchOptions, progress: Progress, teardown: Teardown): Promise<MigrateBenchResult> {
  const rates = o.dirtyBytesPerSecond.map((bps) => {
    const r = DIRTY_RATES.find((d) => d.bytesPerSecond === bps);
    if (!r) throw new Error(`--dirty-rate ${bps}: the demo guest writes one of ${DIRTY_RATES.map((d) => d.bytesPerSecond).join(", ")} bytes/s`);
    return r;
  });
  const a = await startAgent("a", teardown);
  const b = await startAgent("b", teardown);
  progress.start(o.memoryBytes.length * (rates.length + (o.vsQemu ? 1 : 0)), "migrate");
  const qemu: QemuMigration[] = [];
  const rows: MigrateBenchRow[] = [];
  for (const memoryBytes of o.memoryBytes) {
    const yardstick = o.vsQemu ? await measureQemuMigration(memoryBytes, teardown) : undefined;
    if (yardstick) {
      qemu.push(yardstick);
      progress.increment();
    }
    for (const rate of rates) {
      rows.push({ ...(await migrateOnce(a, b, memoryBytes, rate, o.maxDowntimeMs)), qemu: yardstick });
      progress.increment();
    }
  }
  progress.stop();
  return { rows, qemu };
}

