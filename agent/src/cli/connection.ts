// Connections to one or more agents: address parsing, TLS credentials, deadlines, promisified calls.
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { defaultRuntimeDir, defaultStateDir, READ_ONLY_SOCKET_NAME, SOCKET_NAME } from "../paths.js";

export interface GlobalOptions {
  host: string[];
  json: boolean;
  /** Seconds per call. */
  timeout: number;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
}

export const DEFAULT_HOST_TEXT = "the local agent's socket: RUNTIME_DIR/qumra.sock, or qumra-ro.sock when that is not writable";

/** The runtime dir the local agent uses by default (QUMRA_RUNTIME_DIR as the agent reads it). */
export function localRuntimeDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.QUMRA_RUNTIME_DIR) return path.resolve(env.QUMRA_RUNTIME_DIR);
  const isRoot = process.getuid?.() === 0;
  return defaultRuntimeDir(env, isRoot, env.QUMRA_STATE_DIR ? path.resolve(env.QUMRA_STATE_DIR) : defaultStateDir(env, isRoot, os.homedir()));
}

/**
 * The host when no --host is given: $QUMRA_HOST, else the local agent's read-write socket when this user
 * may connect to it, else its read-only socket (the viewer role).
 */
export function defaultHost(env: NodeJS.ProcessEnv = process.env): string {
  if (env.QUMRA_HOST) return env.QUMRA_HOST;
  const dir = localRuntimeDir(env);
  const rw = path.join(dir, SOCKET_NAME);
  const ro = path.join(dir, READ_ONLY_SOCKET_NAME);
  if (existsSync(rw)) {
    try {
      accessSync(rw, constants.W_OK);
      return `unix:${rw}`;
    } catch {
      // Not in the socket's group: the read-only socket still answers.
    }
  }
  if (existsSync(ro)) return `unix:${ro}`;
  throw new Error(`no agent socket at ${rw}${existsSync(rw) ? " that this user may use" : ""} or ${ro}; start qumra-agent, or pass --host unix:PATH or --host HOST:PORT`);
}

/** A gRPC target for "H:P", "[v6]:P" or "unix:/path". */
export function targetOf(host: string): string {
  if (host.startsWith("unix:")) return host;
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):\d{1,5}$/.test(host)) {
    throw new Error(`--host ${host}: expected HOST:PORT (e.g. 127.0.0.1:50051) or unix:/path/to/socket`);
  }
  return host;
}

export function credentialsOf(options: GlobalOptions): grpc.ChannelCredentials {
  if (!options.tlsCa && !options.tlsCert && !options.tlsKey) return grpc.credentials.createInsecure();
  if (Boolean(options.tlsCert) !== Boolean(options.tlsKey)) throw new Error("a client certificate needs both --tls-cert and --tls-key");
  const read = (file: string | undefined) => (file ? readFileSync(file) : null);
  return grpc.credentials.createSsl(read(options.tlsCa), read(options.tlsKey), read(options.tlsCert));
}

export function channelOptions(options: GlobalOptions): grpc.ChannelOptions {
  return {
    ...(options.tlsServerName ? { "grpc.ssl_target_name_override": options.tlsServerName } : {}),
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
  };
}

type ClientConstructor<C> = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => C;

/** A client of one service on one host. */
export function clientFor<C>(Ctor: ClientConstructor<C>, host: string, options: GlobalOptions): C {
  return new Ctor(targetOf(host), credentialsOf(options), channelOptions(options));
}

export function deadline(options: GlobalOptions): Date {
  return new Date(Date.now() + options.timeout * 1000);
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/**
 * Calls a unary method with the global deadline; rejects with the gRPC error. Each call carries an
 * x-request-id (the request's own request_id when it has one), which the agent's audit trail records.
 */
export function callUnary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, options: GlobalOptions): Promise<Res> {
  const metadata = new grpc.Metadata();
  const own = (request as { requestId?: unknown }).requestId;
  metadata.set("x-request-id", typeof own === "string" && own ? own : randomUUID());
  return new Promise((resolve, reject) => {
    method(request, metadata, { deadline: deadline(options) }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

/** "UNAVAILABLE: connect ECONNREFUSED …" for a gRPC error, the message for any other. */
export function describeError(err: unknown): { code: string; message: string } {
  const e = err as Partial<grpc.ServiceError> & Error;
  if (typeof e.code === "number" && grpc.status[e.code]) {
    return { code: grpc.status[e.code], message: (e.details ?? e.message).replace(/\.? Resolution note: *$/, "") };
  }
  return { code: "ERROR", message: e?.message ?? String(err) };
}
