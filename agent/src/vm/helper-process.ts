// Spawns qumra-vmm helpers detached (own session, stdio to a log file, unref'd) so that an agent
// crash or restart never takes a VM down; the agent re-attaches through the control socket.
import { spawn } from "node:child_process";
import { chownSync, existsSync, fstatSync, mkdirSync, openSync, closeSync, readFileSync, readSync, unlinkSync } from "node:fs";
import path from "node:path";
import { HelperError } from "./helper-errors.js";
import { defaultVmmPath } from "../paths.js";
import { helperArgvOf, helperFlag, helpersUnder } from "./helper-scan.js";

/** The helper's command-line arguments for one VM (native/PROTOCOL.md, "Running the helper"). */
export interface HelperArgs {
  vcpus: number;
  memoryBytes: number | bigint;
  /** Run the built-in demo guest (native/build/demo-guest.bin) instead of an image. */
  demo?: boolean;
  image?: string;
  loadAddr?: number | bigint;
  entry?: number | bigint;
  mode?: "long" | "protected";
  /** Boot a Linux kernel (an ELF vmlinux through its PVH entry, or a bzImage) instead of an image. */
  linux?: { kernel: string; initrd?: string; cmdline: string };
  /** Framebuffer size (helper defaults 1024×768; width 64..4096, height 64..2160). */
  fbWidth?: number;
  fbHeight?: number;
}

export interface SpawnOptions {
  args: HelperArgs;
  /** Directory for the control socket (unless controlPath is given), log and pid file. */
  runtimeDir: string;
  /** The VM's control secret (0600, control-secret.ts): the helper answers only who knows it. */
  secretFile: string;
  controlPath?: string;
  device?: string;
  binary?: string;
  /** How long to wait for the control socket to appear (default 10 s). */
  waitMs?: number;
  /** The helper's sandbox; default on, as the helper's own uid. */
  sandbox?: HelperSandboxOptions;
}

export interface HelperSandboxOptions {
  /** false: --no-sandbox. */
  enabled: boolean;
  /** Drop to this uid/gid (the runtime dir is given to them); needs a root agent. */
  uid?: number;
  gid?: number;
}

export interface SpawnedHelper {
  pid: number;
  controlPath: string;
  logPath: string;
  /** Resolves with the exit status when the helper ends (while this agent process lives). */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** native/build/qumra-vmm (override with QUMRA_VMM). */
export function vmmBinaryPath(): string {
  return process.env.QUMRA_VMM ?? defaultVmmPath;
}

/** Where one helper's files are: its control socket, its secret, its runtime dir; and its KVM device. */
export interface HelperPaths {
  controlPath: string;
  secretFile: string;
  runtimeDir: string;
  device?: string;
}

/** The argv of qumra-vmm for these arguments. */
export function helperArgv(args: HelperArgs, paths: HelperPaths, sandbox?: HelperSandboxOptions): string[] {
  const argv = ["--control", paths.controlPath, "--secret-file", paths.secretFile, "--runtime-dir", paths.runtimeDir, "--vcpus", String(args.vcpus), "--memory", String(args.memoryBytes)];
  if (paths.device) argv.push("--device", paths.device);
  if (sandbox && !sandbox.enabled) argv.push("--no-sandbox");
  else if (sandbox?.uid !== undefined && sandbox.gid !== undefined) argv.push("--uid", String(sandbox.uid), "--gid", String(sandbox.gid));
  if (args.fbWidth !== undefined) argv.push("--fb-width", String(args.fbWidth));
  if (args.fbHeight !== undefined) argv.push("--fb-height", String(args.fbHeight));
  if (args.demo) {
    argv.push("--demo");
  } else if (args.linux) {
    argv.push("--kernel", args.linux.kernel, "--cmdline", args.linux.cmdline);
    if (args.linux.initrd) argv.push("--initrd", args.linux.initrd);
  } else {
    if (!args.image) throw new HelperError("INVALID_ARGUMENT", "helper arguments need an image or demo");
    argv.push("--image", args.image);
    if (args.loadAddr !== undefined) argv.push("--load", `0x${BigInt(args.loadAddr).toString(16)}`);
    if (args.entry !== undefined) argv.push("--entry", `0x${BigInt(args.entry).toString(16)}`);
    if (args.mode) argv.push("--mode", args.mode);
  }
  return argv;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The one-letter state of a process from /proc/PID/stat ('R', 'S', 'D', 'T' stopped, 't' traced,
 * 'Z' zombie, …), or undefined when there is no such process.
 */
export function procState(pid: number): string | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name in parentheses may hold spaces: the state follows its last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Is a process with this pid alive (and ours to signal)? A zombie is not: it has exited and only waits
 * for a parent that is not this agent (a re-attached helper's parent died with the old agent).
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return procState(pid) !== "Z";
}

/** A helper stopped by SIGSTOP (or a debugger) runs no code: it cannot answer until it is continued. */
export function isStopped(pid: number): boolean {
  const s = procState(pid);
  return s === "T" || s === "t";
}

/**
 * How helper `pid` ended, from the tail of its log (qumra-vmm.log beside its control socket): the helper
 * logs "qumra-vmm[PID] info: exit status N" on every exit it controls; SIGKILL or a crash leaves none.
 */
export function exitRecordOf(pid: number, controlPath: string): { status: number } | undefined {
  let tail: string;
  try {
    const fd = openSync(path.join(path.dirname(controlPath), "qumra-vmm.log"), "r");
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(size, 4096));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      tail = buf.toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const lines = tail.trimEnd().split("\n").filter((l) => l.includes(`qumra-vmm[${pid}] `));
  const m = /exit status (\d+)\s*$/.exec(lines.pop() ?? "");
  return m ? { status: Number(m[1]) } : undefined;
}

/** Is pid a live helper serving this control socket (its command line says so)? Guards against a reused pid. */
export async function isHelperOf(pid: number, controlPath: string): Promise<boolean> {
  if (!pid || !isAlive(pid)) return false;
  // A qumra-vmm given exactly this --control: a record naming any other process (pid 1, a reused
  // pid, a hostile record) never gets it signalled.
  const argv = helperArgvOf(pid);
  return argv !== undefined && helperFlag(argv, "--control") === controlPath;
}

/** Starts a helper detached and waits for its control socket. */
export async function spawnHelper(opts: SpawnOptions): Promise<SpawnedHelper> {
  const binary = opts.binary ?? vmmBinaryPath();
  if (!existsSync(binary)) throw new HelperError("NOT_FOUND", `${binary} not found: run npm run build:native`);
  mkdirSync(opts.runtimeDir, { recursive: true, mode: 0o700 });
  const sandbox = opts.sandbox;
  // A helper that drops its uid still removes its socket and framebuffer here when it exits.
  if (sandbox?.enabled && sandbox.uid !== undefined && sandbox.gid !== undefined) chownSync(opts.runtimeDir, sandbox.uid, sandbox.gid);
  const controlPath = opts.controlPath ?? path.join(opts.runtimeDir, "control.sock");
  const logPath = path.join(opts.runtimeDir, "qumra-vmm.log");
  // One helper per runtime dir (the helper also flocks it): never start a second beside a live one, and
  // a socket left by a dead one must not pass for the new helper's.
  const live = helpersUnder(path.dirname(path.resolve(opts.runtimeDir))).get(path.resolve(opts.runtimeDir));
  if (live?.length) throw new HelperError("SPAWN_FAILED", `a qumra-vmm (pid ${live.join(", ")}) already runs in ${opts.runtimeDir}; one helper per runtime dir`);
  if (existsSync(controlPath)) unlinkSync(controlPath);
  const argv = helperArgv(opts.args, { controlPath, secretFile: opts.secretFile, runtimeDir: opts.runtimeDir, device: opts.device }, sandbox);
  const logFd = openSync(logPath, "a");
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let child;
  try {
    child = spawn(binary, argv, { detached: true, stdio: ["ignore", logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  child.on("error", () => {
    exited = { code: null, signal: null };
  });
  child.unref();
  const pid = child.pid;
  const deadline = Date.now() + (opts.waitMs ?? 10_000);
  while (Date.now() < deadline) {
    if (exited || pid === undefined) {
      let tail = "";
      try {
        const lines = readFileSync(logPath, "utf8").trim().split("\n").slice(-8);
        // A usage error is one "qumra-vmm: ..." line followed by the usage text: show that line.
        tail = lines.filter((l) => l.startsWith("qumra-vmm: ")).pop() ?? lines.slice(-3).join("\n");
      } catch {
        /* no log */
      }
      throw new HelperError("SPAWN_FAILED", `qumra-vmm exited (status ${exited?.code ?? "?"}${exited?.signal ? `, ${exited.signal}` : ""}): ${tail}`);
    }
    if (existsSync(controlPath)) return { pid, controlPath, logPath, exit };
    await sleep(20);
  }
  try {
    if (pid !== undefined) process.kill(pid, "SIGKILL");
  } catch {
    /* already gone */
  }
  throw new HelperError("TIMEOUT", `qumra-vmm did not create ${controlPath} in time`);
}
