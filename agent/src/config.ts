// Agent configuration: flags > QUMRA_* environment > defaults, validated at start with clear messages.
import { parseArgs } from "node:util";
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import net from "node:net";
import type { Level } from "pino";
import { LOG_LEVELS } from "./logger.js";
import { defaultRuntimeDir, defaultStateDir, defaultVmmPath, READ_ONLY_SOCKET_NAME, SOCKET_NAME } from "./paths.js";
import { ConfigError } from "./config-error.js";
import { resolveSocketGroup, type SocketGroup } from "./socket-group.js";
import { loadPolicy, PolicyError, type Policy } from "./authz/policy.js";
import { IMAGE_COMPRESSIONS, type ImageCompression } from "./display/types.js";
import type { AdmissionLimits } from "./vm/admission.js";
import { DEFAULT_CLIENT_LIMITS, type ClientLimits } from "./limits.js";

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** With a CA, clients must present a certificate it signed (mutual TLS). */
  ca?: Buffer;
}

export interface AgentConfig {
  /** TCP address "host:port" (mutual TLS, or plaintext on loopback for development); undefined: none. */
  listen?: { host: string; port: number };
  // --- API access: the unix sockets, their group, the policy (authorization) ---
  /** The read-write unix socket (default RUNTIME/qumra.sock, mode 0660); undefined: --unix none. */
  unix?: string;
  /** The read-only socket beside it (qumra-ro.sock, mode 0666): the viewer role only. */
  unixReadOnly?: string;
  /** The group that owns the read-write socket. */
  socketGroup: SocketGroup;
  /** The --authz policy; undefined: the read-write socket and every mTLS client are admin. */
  authz?: Policy;
  // --- end of API access ---
  stateDir: string;
  /** --images-dir: where LinuxBoot's kernel and initrd paths are resolved (images-dir.ts). */
  imagesDir: string;
  runtimeDir: string;
  tls?: TlsFiles;
  logLevel: Level;
  vmmPath: string;
  /** How long graceful shutdown waits for calls in flight before cancelling them. */
  shutdownTimeoutMs: number;
  /** Worker threads for display encoding (0: on the main thread). */
  displayWorkers: number;
  /** The HTTP(S) listener (SPICE over WebSocket on /spice/VM_ID); off when undefined. */
  http?: { host: string; port: number };
  /** The Prometheus listener (GET /metrics; HTTPS with the agent's certificate); off when undefined. */
  metrics?: { host: string; port: number };
  /** Plaintext gRPC serving only grpc.health.v1 (kubelet's probe); off when undefined. */
  healthListen?: { host: string; port: number };
  /** The SPICE server for stock clients; undefined: none. */
  spice?: SpiceConfig;
  /** The helpers' sandbox (--vmm-sandbox, --vmm-user). */
  vmmSandbox: VmmSandboxConfig;
  /** What CreateVm admits (--max-vms, --memory-overcommit, --memory-reserve). */
  admission: AdmissionLimits;
  /** Per-VM cgroups (--cgroups, --cgroup-parent). */
  cgroups: CgroupConfig;
  /** Caps per VM on clients (--max-consoles-per-vm, --max-viewers-per-vm). */
  clientLimits: ClientLimits;
}

export interface CgroupConfig {
  /** false: --cgroups off. */
  enabled: boolean;
  /** The subtree, relative to the cgroup2 mount or absolute inside it (default qumra.slice). */
  parent: string;
}

export interface VmmSandboxConfig {
  /** false: helpers run with --no-sandbox (benchmarks, debugging). */
  enabled: boolean;
  /** The user helpers run as when the agent is root (created if missing). */
  user: string;
}

export interface SpiceConfig {
  host: string;
  /** Plaintext port (loopback hosts only); undefined: TLS only. */
  port?: number;
  /** TLS port with the agent's certificate. */
  tlsPort?: number;
  /** Default image compression; a VM's spec overrides it. */
  imageCompression: ImageCompression;
  /** Keep earlier clients of a VM when a new one connects (default: the new one replaces them). */
  multiClient: boolean;
}

export { ConfigError };

export const USAGE = `Usage: qumra-agent [options]

  --unix PATH|none       the read-write API socket (default RUNTIME_DIR/qumra.sock, mode 0660, group
                         --socket-group), plus a read-only one beside it (qumra-ro.sock, mode 0666: viewer only)
  --socket-group NAME    group of the read-write socket (default qumra when that group exists, else the agent's)
  --listen HOST:PORT     also serve gRPC on TCP (default: none); needs mutual TLS (--tls-cert, --tls-key and
                         --tls-ca), except plaintext on a loopback address for development, where any local
                         user controls this agent
  --authz FILE           policy (JSON or YAML): identities (exact or glob) to roles viewer|operator|admin,
                         optionally only for VMs with some labels; default: the read-write socket and every
                         mTLS client are admin, the read-only socket viewer
  --state-dir DIR        VM specs and states (default /var/lib/qumra as root, else ~/.local/state/qumra)
  --images-dir DIR       Linux kernels and initrds VMs boot from, named relative to it (default STATE_DIR/images)
  --runtime-dir DIR      control sockets and framebuffers (default /run/qumra as root, else $XDG_RUNTIME_DIR/qumra
                         or STATE_DIR/run)
  --tls-cert FILE        server certificate (PEM); required to listen on a non-loopback address
  --tls-key FILE         server private key (PEM)
  --tls-ca FILE          CA (PEM) that signs client certificates; required with --listen and --tls-cert
  --log-level LEVEL      fatal|error|warn|info|debug|trace (default info)
  --vmm PATH             the qumra-vmm helper binary (default native/build/qumra-vmm)
  --shutdown-timeout MS  grace period for calls in flight on SIGTERM (default 5000)
  --display-workers N    worker threads that encode displays (default: one per core; 0 = the main thread)
  --spice HOST[:PORT]    serve SPICE clients (remote-viewer, spicy): plaintext on PORT (loopback hosts only);
                         HOST alone serves only --spice-tls-port (default: no SPICE server)
  --spice-tls-port PORT  SPICE over TLS on the same host, with --tls-cert/--tls-key
  --spice-image-compression MODE
                         auto_glz|auto_lz|quic|glz|lz|off (default auto_glz; a VM's image_compression overrides it)
  --spice-multi-client   let several clients view a VM at once (default: a new client replaces the old one)
  --vmm-sandbox on|off   confine each helper after its setup: seccomp allowlist, no_new_privs, rlimits, no
                         inherited fds, a mount namespace with only its runtime dir and /dev/kvm (default on)
  --vmm-user NAME        as root, run helpers as this unprivileged user, created if missing (default qumra-vmm)
  --http HOST:PORT       HTTP listener for browsers: SPICE over WebSocket on /spice/VM_ID (default off);
                         HTTPS/WSS with --tls-cert/--tls-key, which a non-loopback address requires
  --metrics HOST:PORT    Prometheus metrics on GET /metrics (default off; --http serves /metrics too);
                         HTTPS with --tls-cert/--tls-key, which a non-loopback address requires
  --health-listen HOST:PORT
                         plaintext gRPC serving only grpc.health.v1.Health (Check, Watch), for probes that
                         speak neither mutual TLS nor unix sockets, like kubelet's; it exposes no VM data, so
                         any address is allowed, e.g. 0.0.0.0:9465 (default off)
  --max-vms N            most VMs defined at once, in any state (default 64)
  --memory-overcommit F  admit guest memory + framebuffers + 16 MiB per VM, summed over every defined VM
                         (stopped ones included), up to MemTotal × F − --memory-reserve (default 1.0)
  --memory-reserve SIZE  memory kept for the host: bytes, with K/M/G/T (powers of 1024), or a percentage of
                         MemTotal, e.g. 2G or 5% (default 10% of MemTotal, at most 1 GiB)
  --cgroups auto|off     run each helper in a cgroup v2 of its own with memory.max, pids.max and cpu.weight
                         where the cgroup2 tree is writable (default auto: without, and said so in GetHost,
                         where it is not)
  --cgroup-parent PATH   the agent's cgroup subtree, relative to the cgroup2 mount or absolute inside it
                         (default qumra.slice)
  --max-consoles-per-vm N
                         console attachments one VM may have at once (default 16); more: RESOURCE_EXHAUSTED
  --max-viewers-per-vm N display viewers one VM may have at once, gRPC, SPICE and WebSocket together
                         (default 16); more: RESOURCE_EXHAUSTED
  --console-backlog BYTES
                         console output kept for one attachment whose reader is behind (default 1048576);
                         past it the oldest is dropped and the reader sees "[qumra: N bytes dropped]"
  -h, --help             this text

Every option can also be set as QUMRA_<NAME> in the environment, e.g. QUMRA_LISTEN, QUMRA_STATE_DIR.`;

const OPTIONS = {
  listen: { type: "string" },
  unix: { type: "string" },
  "socket-group": { type: "string" },
  authz: { type: "string" },
  "state-dir": { type: "string" },
  "images-dir": { type: "string" },
  "runtime-dir": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-ca": { type: "string" },
  "log-level": { type: "string" },
  vmm: { type: "string" },
  "shutdown-timeout": { type: "string" },
  "display-workers": { type: "string" },
  spice: { type: "string" },
  "spice-tls-port": { type: "string" },
  "spice-image-compression": { type: "string" },
  "spice-multi-client": { type: "boolean" },
  http: { type: "string" },
  metrics: { type: "string" },
  "health-listen": { type: "string" },
  "vmm-sandbox": { type: "string" },
  "vmm-user": { type: "string" },
  "max-vms": { type: "string" },
  "memory-overcommit": { type: "string" },
  "memory-reserve": { type: "string" },
  cgroups: { type: "string" },
  "cgroup-parent": { type: "string" },
  "max-consoles-per-vm": { type: "string" },
  "max-viewers-per-vm": { type: "string" },
  "console-backlog": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type OptionName = Exclude<keyof typeof OPTIONS, "help" | "spice-multi-client">;

/** Parses argv and env; returns "help" when --help was asked. Throws ConfigError with a clear message. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig | "help" {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n\n${USAGE}`);
  }
  if (values.help) return "help";

  const get = (name: OptionName): string | undefined => {
    const flag = values[name];
    if (typeof flag === "string") return flag;
    const fromEnv = env[`QUMRA_${name.toUpperCase().replaceAll("-", "_")}`];
    return fromEnv === "" ? undefined : fromEnv;
  };

  const isRoot = process.getuid?.() === 0;
  const stateDir = path.resolve(get("state-dir") ?? defaultStateDir(env, isRoot, os.homedir()));
  const runtimeDir = path.resolve(get("runtime-dir") ?? defaultRuntimeDir(env, isRoot, stateDir));
  const imagesDir = path.resolve(get("images-dir") ?? path.join(stateDir, "images"));

  // --- API access ---
  const listenText = get("listen") ?? "none";
  const listen = listenText === "none" ? undefined : parseHostPort(listenText, "--listen");
  const unixText = get("unix");
  const unix = unixText === "none" ? undefined : path.resolve(unixText ?? path.join(runtimeDir, SOCKET_NAME));
  const unixReadOnly = unix && readOnlySocketBeside(unix);
  if (!listen && !unix) throw new ConfigError("nothing to listen on: --unix none needs --listen HOST:PORT");
  for (const file of [unix, unixReadOnly]) {
    if (file && Buffer.byteLength(file) > 107) throw new ConfigError(`--unix ${file}: a unix socket path must be at most 107 bytes; choose a shorter --runtime-dir or --unix`);
  }
  const socketGroup = resolveSocketGroup(get("socket-group"));
  let authz: Policy | undefined;
  const authzFile = get("authz");
  if (authzFile) {
    try {
      authz = loadPolicy(authzFile);
    } catch (err) {
      if (err instanceof PolicyError) throw new ConfigError(err.message);
      throw err;
    }
  }

  const tls = loadTls(get("tls-cert"), get("tls-key"), get("tls-ca"));
  if (listen && !tls && !isLoopback(listen.host)) {
    throw new ConfigError(
      `refusing to listen on ${listen.host}:${listen.port} without TLS: a non-loopback address needs mutual TLS (--tls-cert, --tls-key and --tls-ca)`,
    );
  }
  if (listen && tls && !tls.ca) {
    throw new ConfigError(
      `refusing to listen on ${listen.host}:${listen.port} with --tls-cert but no --tls-ca: any client without a certificate could control this agent; give --tls-ca CA.pem (the CA that signs your clients' certificates)`,
    );
  }
  // --- end of API access ---

  const httpText = get("http") ?? "none";
  const http = httpText === "none" ? undefined : parseHostPort(httpText, "--http");
  if (http && !tls && !isLoopback(http.host)) {
    throw new ConfigError(
      `refusing to serve HTTP on ${http.host}:${http.port} without TLS: a non-loopback --http address needs --tls-cert and --tls-key`,
    );
  }

  const metricsText = get("metrics") ?? "none";
  const metrics = metricsText === "none" ? undefined : parseHostPort(metricsText, "--metrics");
  if (metrics && !tls && !isLoopback(metrics.host)) {
    const where = `${metrics.host.includes(":") ? `[${metrics.host}]` : metrics.host}:${metrics.port}`;
    throw new ConfigError(
      `refusing to serve metrics on ${where} without TLS: they name every VM; a non-loopback --metrics address needs --tls-cert and --tls-key (or use a loopback address such as 127.0.0.1:${metrics.port})`,
    );
  }

  // Health only, no VM data: unlike --metrics, any address is fine without TLS.
  const healthText = get("health-listen") ?? "none";
  const healthListen = healthText === "none" ? undefined : parseHostPort(healthText, "--health-listen");

  const logLevel = (get("log-level") ?? "info") as Level;
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`--log-level ${logLevel}: expected one of ${LOG_LEVELS.join(", ")}`);

  const timeoutText = get("shutdown-timeout") ?? "5000";
  const shutdownTimeoutMs = Number(timeoutText);
  if (!Number.isInteger(shutdownTimeoutMs) || shutdownTimeoutMs < 0 || shutdownTimeoutMs > 600_000) {
    throw new ConfigError(`--shutdown-timeout ${timeoutText}: expected milliseconds from 0 to 600000`);
  }

  const workersText = get("display-workers") ?? String(os.availableParallelism());
  const displayWorkers = Number(workersText);
  if (!Number.isInteger(displayWorkers) || displayWorkers < 0 || displayWorkers > 64) {
    throw new ConfigError(`--display-workers ${workersText}: expected a whole number from 0 to 64`);
  }

  const multiClient = values["spice-multi-client"] === true || /^(1|true|yes)$/i.test(env.QUMRA_SPICE_MULTI_CLIENT ?? "");
  const spice = loadSpice(get("spice"), get("spice-tls-port"), get("spice-image-compression"), multiClient, tls);

  const vmmSandbox = loadVmmSandbox(get("vmm-sandbox"), get("vmm-user"));
  const admission = loadAdmission(get("max-vms"), get("memory-overcommit"), get("memory-reserve"));
  const cgroups = loadCgroups(get("cgroups"), get("cgroup-parent"));
  const clientLimits = loadClientLimits(get("max-consoles-per-vm"), get("max-viewers-per-vm"), get("console-backlog"));

  return { listen, unix, unixReadOnly, socketGroup, authz, stateDir, imagesDir, runtimeDir, tls, logLevel, vmmPath: path.resolve(get("vmm") ?? defaultVmmPath), shutdownTimeoutMs, displayWorkers, spice, http, metrics, healthListen, vmmSandbox, admission, cgroups, clientLimits };
}

// ---- admission and cgroups ----

const SIZE_UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

function loadAdmission(maxVmsText = "64", overcommitText = "1.0", reserveText: string | undefined, memTotal = os.totalmem()): AdmissionLimits {
  const maxVms = Number(maxVmsText);
  if (!/^\d+$/.test(maxVmsText) || maxVms < 1 || maxVms > 10_000) throw new ConfigError(`--max-vms ${maxVmsText}: expected a whole number from 1 to 10000`);
  const memoryOvercommit = Number(overcommitText);
  if (!/^\d+(\.\d+)?$/.test(overcommitText) || memoryOvercommit <= 0 || memoryOvercommit > 100) {
    throw new ConfigError(`--memory-overcommit ${overcommitText}: expected a factor above 0 and at most 100, e.g. 1.0 (none) or 1.5`);
  }
  return { maxVms, memoryOvercommit, memoryReserveBytes: parseReserve(reserveText, memTotal) };
}

/** SIZE (bytes, K/M/G/T suffixes in powers of 1024, optional "iB"/"B") or N% of MemTotal. */
export function parseReserve(text: string | undefined, memTotal: number): number {
  if (text === undefined) return Math.min(1024 ** 3, Math.floor(memTotal / 10));
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (percent) {
    const p = Number(percent[1]);
    if (p >= 100) throw new ConfigError(`--memory-reserve ${text}: a percentage of MemTotal below 100`);
    return Math.floor((memTotal * p) / 100);
  }
  const size = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text);
  if (!size) throw new ConfigError(`--memory-reserve ${text}: expected bytes (e.g. 1073741824, 512M, 2G) or a percentage of MemTotal (e.g. 5%)`);
  return Math.floor(Number(size[1]) * SIZE_UNITS[size[2].toLowerCase()]);
}

function loadCgroups(modeText = "auto", parentText = "qumra.slice"): CgroupConfig {
  if (modeText !== "auto" && modeText !== "off") throw new ConfigError(`--cgroups ${modeText}: expected auto or off`);
  if (!/^[A-Za-z0-9._/-]+$/.test(parentText) || parentText.split("/").includes("..")) {
    throw new ConfigError(`--cgroup-parent ${parentText}: expected a cgroup path like qumra.slice (letters, digits, '.', '_', '-', '/'; no '..')`);
  }
  return { enabled: modeText === "auto", parent: parentText };
}

// ---- caps per VM on clients and their buffers (--max-consoles-per-vm, --max-viewers-per-vm, --console-backlog) ----

function loadClientLimits(consolesText: string | undefined, viewersText: string | undefined, backlogText: string | undefined): ClientLimits {
  const whole = (text: string | undefined, flag: string, fallback: number, min: number, max: number): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) throw new ConfigError(`--${flag} ${text}: expected a whole number from ${min} to ${max}`);
    return n;
  };
  return {
    maxConsolesPerVm: whole(consolesText, "max-consoles-per-vm", DEFAULT_CLIENT_LIMITS.maxConsolesPerVm, 1, 100_000),
    maxViewersPerVm: whole(viewersText, "max-viewers-per-vm", DEFAULT_CLIENT_LIMITS.maxViewersPerVm, 1, 100_000),
    consoleBacklogBytes: whole(backlogText, "console-backlog", DEFAULT_CLIENT_LIMITS.consoleBacklogBytes, 4096, 64 << 20),
  };
}

// ---- the helpers' sandbox (--vmm-sandbox, --vmm-user) ----

function loadVmmSandbox(sandboxText: string | undefined, userText: string | undefined): VmmSandboxConfig {
  const mode = sandboxText ?? "on";
  if (mode !== "on" && mode !== "off") throw new ConfigError(`--vmm-sandbox ${mode}: expected on or off`);
  const user = userText ?? "qumra-vmm";
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) throw new ConfigError(`--vmm-user ${user}: expected a user name like qumra-vmm (lower case letters, digits, - and _)`);
  if (user === "root") throw new ConfigError("--vmm-user root: helpers need an unprivileged user");
  return { enabled: mode === "on", user };
}

function loadSpice(spiceText: string | undefined, tlsPortText: string | undefined, compressionText: string | undefined, multiClient: boolean, tls: TlsFiles | undefined): SpiceConfig | undefined {
  if (!spiceText) {
    if (tlsPortText) throw new ConfigError("--spice-tls-port needs --spice HOST (the address both SPICE ports listen on)");
    return undefined;
  }
  const withPort = /:\d{1,5}$/.test(spiceText) && !/^[0-9a-fA-F:]+$/.test(spiceText) ? parseHostPort(spiceText, "--spice") : undefined;
  const host = withPort?.host ?? spiceText.replace(/^\[(.*)\]$/, "$1");
  if (!host || /[\s[\]]/.test(host)) throw new ConfigError(`--spice ${spiceText}: expected HOST or HOST:PORT, e.g. 127.0.0.1:5900`);
  if (withPort && !isLoopback(host)) {
    throw new ConfigError(`--spice ${spiceText}: a non-loopback plaintext SPICE port would send tickets and screens in the clear; use --spice ${host} --spice-tls-port PORT`);
  }
  let tlsPort: number | undefined;
  if (tlsPortText) {
    tlsPort = Number(tlsPortText);
    if (!/^\d{1,5}$/.test(tlsPortText) || tlsPort > 65535) throw new ConfigError(`--spice-tls-port ${tlsPortText}: expected a port number`);
    if (!tls) throw new ConfigError("--spice-tls-port needs --tls-cert and --tls-key");
  }
  if (!withPort && tlsPort === undefined) throw new ConfigError(`--spice ${spiceText} has no port, which means TLS only: give --spice-tls-port PORT (or --spice ${host}:PORT on loopback)`);
  const imageCompression = (compressionText ?? "auto_glz") as ImageCompression;
  if (!IMAGE_COMPRESSIONS.includes(imageCompression)) throw new ConfigError(`--spice-image-compression ${compressionText}: expected one of ${IMAGE_COMPRESSIONS.join(", ")}`);
  return { host, port: withPort?.port, tlsPort, imageCompression, multiClient };
}

/** RUNTIME/qumra.sock → RUNTIME/qumra-ro.sock; /x/api.sock → /x/api-ro.sock. */
function readOnlySocketBeside(file: string): string {
  if (path.basename(file) === SOCKET_NAME) return path.join(path.dirname(file), READ_ONLY_SOCKET_NAME);
  return file.replace(/(\.sock)?$/, "-ro.sock");
}

export function parseHostPort(text: string, what: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new ConfigError(`${what} ${text}: expected HOST:PORT, e.g. 127.0.0.1:50051 or [::1]:50051`);
  return { host: match[1] ?? match[2], port };
}

export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (net.isIPv4(host)) return host.startsWith("127.");
  if (net.isIPv6(host)) return host === "::1" || host === "0:0:0:0:0:0:0:1";
  return false;
}

function loadTls(cert?: string, key?: string, ca?: string): TlsFiles | undefined {
  if (!cert && !key && !ca) return undefined;
  if (!cert || !key) throw new ConfigError("TLS needs both --tls-cert and --tls-key");
  return { cert: readPem(cert, "--tls-cert"), key: readPem(key, "--tls-key"), ca: ca ? readPem(ca, "--tls-ca") : undefined };
}

function readPem(file: string, what: string): Buffer {
  if (!existsSync(file)) throw new ConfigError(`${what} ${file}: no such file`);
  const data = readFileSync(file);
  if (!data.includes("-----BEGIN ")) throw new ConfigError(`${what} ${file}: not a PEM file`);
  return data;
}
