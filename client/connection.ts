// Where the SDK connects and with which credentials: an address, a unix socket, or the local agent
// found as the CLI finds it (agent/src/cli/connection.ts, reused, not copied).
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { defaultHost, targetOf } from "../agent/src/cli/connection.js";

/** A file's path or its bytes. */
export type PathOrBuffer = string | Buffer;

export interface TlsOptions {
  /** The CA that signed the agent's certificate (default: the system roots). */
  ca?: PathOrBuffer;
  /** This client's certificate and key, for an agent that requires mutual TLS (--tls-ca). */
  cert?: PathOrBuffer;
  key?: PathOrBuffer;
  /** The name to check the agent's certificate against, when it differs from the address's host. */
  serverName?: string;
}

export interface ConnectOptions {
  /** "HOST:PORT", "[V6]:PORT" or "unix:/path". Default: $QUMRA_HOST, else the local agent's socket. */
  address?: string;
  /** A unix socket's path (instead of `address`). */
  socket?: string;
  /** TLS, for a TCP address; without it the connection is plaintext (unix sockets, loopback development). */
  tls?: TlsOptions;
  /** Each call's deadline unless the call gives its own (default 30000). */
  defaultDeadlineMs?: number;
  /** How often a safe call is retried on UNAVAILABLE / DEADLINE_EXCEEDED (default 5 retries, 100 ms doubling to 2 s). */
  retry?: Partial<RetryOptions>;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
}

export interface RetryOptions {
  /** Retries after the first attempt (0: none). */
  retries: number;
  /** The first pause; each next one doubles, up to maxBackoffMs (with ±20% jitter). */
  backoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_DEADLINE_MS = 30_000;
export const DEFAULT_RETRY: RetryOptions = { retries: 5, backoffMs: 100, maxBackoffMs: 2_000 };

/** The gRPC target of the options (throws a message naming what to pass). */
export function targetFor(options: ConnectOptions): string {
  if (options.address !== undefined && options.socket !== undefined) throw new Error("connect: give address or socket, not both");
  if (options.socket !== undefined) {
    if (!options.socket) throw new Error("connect: socket is empty; give a unix socket's path");
    return `unix:${options.socket}`;
  }
  return targetOf(options.address ?? defaultHost());
}

const read = (what: string, v: PathOrBuffer | undefined): Buffer | null => {
  if (v === undefined) return null;
  if (Buffer.isBuffer(v)) return v;
  try {
    return readFileSync(v);
  } catch (err) {
    throw new Error(`connect: cannot read tls.${what} ${v}: ${(err as Error).message}`);
  }
};

export function credentialsFor(options: ConnectOptions): grpc.ChannelCredentials {
  const tls = options.tls;
  if (!tls) return grpc.credentials.createInsecure();
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new Error("connect: a client certificate needs both tls.cert and tls.key");
  return grpc.credentials.createSsl(read("ca", tls.ca), read("key", tls.key), read("cert", tls.cert));
}

export function channelOptionsFor(options: ConnectOptions): grpc.ChannelOptions {
  return {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    // A restarted agent is back within a second or two: reconnect soon rather than after grpc-js's
    // default backoff (1 s growing to 120 s), so retries and watches find it.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 2_000,
    ...(options.tls?.serverName ? { "grpc.ssl_target_name_override": options.tls.serverName } : {}),
    ...options.channelOptions,
  };
}
