// `qumra bench boot`: create → each Linux boot milestone on the serial console, through an agent of its
// own booting a kernel (LinuxBoot: a vmlinux through its PVH entry or a bzImage), and with --vs-qemu Debian's qemu -M microvm
// booting the same kernel, initrd and command line in the same run, one after the other (this bench is
// CPU-bound: side by side they would slow each other down).
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { packageRoot } from "../agent/src/paths.js";
import { VmServiceClient, VmState, type ConsoleOutput, type VmEvent } from "../agent/src/gen/qumra/v1/vm.js";
import type { Progress } from "../agent/src/cli/progress.js";
import { BOOT_MILESTONES, CONSOLE_SETTLE_MS, INIT_MARKER, MilestoneClock } from "./boot-milestones.js";
import { bootQemu, qemuBootArgs, type BootRun, type LinuxBootTarget } from "./boot-qemu.js";
import type { Teardown } from "./teardown.js";

export const DEFAULT_BOOT_CMDLINE = "console=ttyS0 earlyprintk=ttyS0 noxsave";

/** Where scripts/fixtures.mjs (npm run fixtures) caches the kernel and initramfs. */
export function fixturesDir(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "qumra", "fixtures");
}

export interface BootBenchOptions extends LinuxBootTarget {
  vsQemu: boolean;
}

export interface BootBenchRow {
  milestone: string;
  qumraMs?: number;
  qemuMs?: number;
  /** qumra / qemu, when both reached it. */
  ratio?: number;
}

export interface BootBenchResult {
  options: BootBenchOptions;
  rows: BootBenchRow[];
  qumra: BootRun;
  qemu?: BootRun;
  /** The qemu command line the yardstick ran (its QMP socket path aside). */
  qemuArgs?: string[];
  /** The host's 1-minute load average as each side started: the sides run apart, others may not. */
  loadAtStart: { qumra: number; qemu?: number };
}

interface BenchAgent {
  vms: VmServiceClient;
  imagesDir: string;
}

/** A hard link when the file is on the same filesystem, else a copy (the agent refuses symlinks out). */
function placeImage(from: string, imagesDir: string, name: string): string {
  const to = path.join(imagesDir, name);
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
  return name;
}

async function startAgent(teardown: Teardown): Promise<BenchAgent> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "qumra-bench-boot-"));
  teardown.add("agent dirs", () => rmSync(dir, { recursive: true, force: true }));
  const imagesDir = path.join(dir, "images");
  mkdirSync(imagesDir);
  const socket = path.join(dir, "run", "qumra.sock");
  const args = [path.join(packageRoot, "bin", "qumra-agent.js"), "--unix", socket, "--state-dir", path.join(dir, "state"), "--runtime-dir", path.join(dir, "run"), "--images-dir", imagesDir, "--log-level", "warn", "--display-workers", "0"];
  // Own process group: Ctrl-C must not stop the agent before teardown deleted its VM through it.
  const child = teardown.child("qumra-agent", spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], detached: true }));
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const vms = new VmServiceClient(`unix:${socket}`, grpc.credentials.createInsecure());
  teardown.add("agent client", () => vms.close());
  await new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 20_000;
    const poll = () =>
      vms.listVms({ state: 0, labelSelector: {} }, (err) => {
        if (!err) return resolve();
        if (child.exitCode !== null || Date.now() > deadline) return reject(new Error(`qumra-agent did not start: ${output.trim().split("\n").at(-1) ?? ""}`));
        setTimeout(poll, 100);
      });
    poll();
  });
  return { vms, imagesDir };
}

function unary<Req, Res>(fn: (req: Req, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Moves the bar by one per milestone newly reached. */
function milestoneProgress(clock: MilestoneClock, progress: Progress): () => void {
  let shown = 0;
  return () => {
    const now = Object.keys(clock.reached()).length;
    if (now > shown) progress.increment(now - shown);
    shown = now;
  };
}

/** One boot through the agent: t0 just before CreateVm; ends at the init marker, CRASHED/STOPPED, or timeout. */
async function bootQumra(agent: BenchAgent, o: BootBenchOptions, progress: Progress, teardown: Teardown): Promise<BootRun> {
  const kernel = placeImage(o.kernel, agent.imagesDir, `kernel-${path.basename(o.kernel)}`);
  const initrd = o.initrd ? placeImage(o.initrd, agent.imagesDir, `initrd-${path.basename(o.initrd)}`) : "";
  const vmId = `bench-boot-${randomUUID().slice(0, 8)}`;
  const { vms } = agent;
  // Interrupted mid-boot: the VM goes through the agent before the agent goes.
  teardown.add("boot VM", () => unary(vms.deleteVm.bind(vms), { vmId, force: true }).catch(() => undefined));
  const t0 = Date.now();
  const clock = new MilestoneClock(t0);
  const moved = milestoneProgress(clock, progress);
  await unary(vms.createVm.bind(vms), {
    vmId,
    requestId: randomUUID(),
    spec: { name: vmId, vcpus: o.vcpus, memoryBytes: BigInt(o.memoryBytes), boot: { $case: "linux", value: { kernel, initrd, cmdline: o.cmdline } }, labels: {}, imageCompression: 0, cpuWeight: 0 },
  });
  const serial = vms.attachConsole();
  const events = vms.watchVms({ vmId, fromSequence: 0n, heartbeatMs: 0, instanceId: "" });
  let timer: NodeJS.Timeout | undefined;
  /** When the state event came: the end, though the console gets a moment more to drain. */
  let haltedAt: number | undefined;
  try {
    const ended = await new Promise<{ end: BootRun["end"]; detail: string }>((resolve, reject) => {
      serial.on("data", (m: ConsoleOutput) => {
        clock.feed(Buffer.from(m.data).toString("latin1"));
        moved();
        if (clock.has(INIT_MARKER.name)) resolve({ end: "init-marker", detail: `${INIT_MARKER.pattern.source} on the serial console` });
      });
      serial.on("error", () => undefined);
      serial.write({ vmId, data: Buffer.alloc(0) });
      events.on("data", (e: VmEvent) => {
        if ((e.state === VmState.VM_STATE_CRASHED || e.state === VmState.VM_STATE_STOPPED) && haltedAt === undefined) {
          haltedAt = Date.now();
          const detail = `VM ${VmState[e.state].replace("VM_STATE_", "")}${e.reason ? `: ${e.reason}` : ""}`;
          setTimeout(() => resolve({ end: "stopped", detail }), CONSOLE_SETTLE_MS);
        }
      });
      events.on("error", () => undefined);
      timer = setTimeout(() => resolve({ end: "timeout", detail: `no init marker within ${o.timeoutMs} ms` }), o.timeoutMs);
      unary(vms.startVm.bind(vms), { vmId }).catch(reject);
    });
    const endedAt = ended.end === "stopped" ? haltedAt! : Date.now();
    return { milestones: clock.reached(), furthest: clock.furthest(), end: ended.end, endDetail: ended.detail, console: clock.text(), totalMs: endedAt - t0 };
  } finally {
    clearTimeout(timer);
    serial.cancel();
    events.cancel();
    await unary(vms.deleteVm.bind(vms), { vmId, force: true }).catch(() => undefined);
  }
}

export async function runBootBench(o: BootBenchOptions, progress: Progress, teardown: Teardown): Promise<BootBenchResult> {
  const agent = await startAgent(teardown);
  const loadAtStart: BootBenchResult["loadAtStart"] = { qumra: os.loadavg()[0] };
  progress.start(BOOT_MILESTONES.length, "qumra boot");
  let qumra: BootRun;
  try {
    qumra = await bootQumra(agent, o, progress, teardown);
  } finally {
    progress.stop();
  }
  let qemu: BootRun | undefined;
  if (o.vsQemu) {
    loadAtStart.qemu = os.loadavg()[0];
    progress.start(BOOT_MILESTONES.length, "qemu boot");
    const abort = new AbortController();
    const running = bootQemu({ ...o, signal: abort.signal, onMilestone: () => progress.increment() });
    // Interrupted: bootQemu kills qemu and removes its dir when aborted; wait for that.
    teardown.add("qemu boot", async () => {
      abort.abort();
      await running.catch(() => undefined);
    });
    try {
      qemu = await running;
    } finally {
      progress.stop();
    }
  }
  const rows = BOOT_MILESTONES.map(({ name }) => {
    const qumraMs = qumra.milestones[name];
    const qemuMs = qemu?.milestones[name];
    const ratio = qumraMs !== undefined && qemuMs !== undefined ? Math.round((qumraMs / Math.max(1, qemuMs)) * 100) / 100 : undefined;
    return { milestone: name, qumraMs, qemuMs, ratio };
  });
  return { options: o, rows, qumra, qemu, loadAtStart, qemuArgs: o.vsQemu ? qemuBootArgs(o, "TMPDIR/qmp.sock") : undefined };
}
