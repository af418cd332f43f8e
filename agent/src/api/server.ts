// The gRPC servers: qumra.v1 services, grpc.health.v1, server reflection on every listener (the unix
// sockets, TCP with mutual TLS or loopback plaintext), each behind its authorization step; shutdown.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { HealthImplementation } from "grpc-health-check";
import { ReflectionService } from "@grpc/reflection";
import { readdirSync } from "node:fs";
import path from "node:path";
import type { AgentConfig } from "../config.js";
import type { Logger } from "../logger.js";
import { protoDir } from "../paths.js";
import { loggingInterceptor, type RpcObserver } from "./logging-interceptor.js";
import { authorizeInterceptor, callerOf, type AuthorizeOptions } from "./authorize.js";
import type { Listener } from "./identity.js";
import { bindUnixSocket, removeUnixSocket } from "./unix-socket.js";
import type { AuditSink } from "../audit/audit-entry.js";

export interface ServiceBinding {
  /** Full name, e.g. "qumra.v1.HostService" (used for health status). */
  name: string;
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

/** What the authorization step of every listener needs. */
export interface ServerAccess {
  labelsOf: AuthorizeOptions["labelsOf"];
  audit: AuditSink;
  /** Every answered call, for the metrics (none: not counted). */
  onRpc?: RpcObserver;
}

interface ListenerServer {
  listener: Listener;
  server: grpc.Server;
  health: HealthImplementation;
}

/**
 * One gRPC server per listener (read-write socket, read-only socket, TCP), so each call's listener —
 * and with it the caller's identity — is known without trusting anything the client says.
 */
export class AgentServer {
  private readonly servers: ListenerServer[] = [];
  /** The names every listener's health service reports: "" (the agent) and each qumra.v1 service. */
  readonly healthNames: readonly string[];
  private readonly reflection: protoLoader.PackageDefinition;
  readonly addresses: string[] = [];

  constructor(
    private readonly config: AgentConfig,
    private readonly logger: Logger,
    private readonly services: ServiceBinding[],
    private readonly access: ServerAccess,
  ) {
    this.healthNames = ["", ...services.map((s) => s.name)];
    this.reflection = loadProtoDefinitions();
  }

  /** Binds every configured listener; resolves with the addresses actually bound (ports resolved). */
  async listen(): Promise<string[]> {
    const { unix, unixReadOnly, socketGroup } = this.config;
    if (unix) {
      await bindUnixSocket(this.serverFor({ kind: "unix", path: unix, readOnly: false }), unix, { mode: 0o660, gid: socketGroup.gid });
      this.addresses.push(`unix:${unix}`);
    }
    if (unixReadOnly) {
      await bindUnixSocket(this.serverFor({ kind: "unix", path: unixReadOnly, readOnly: true }), unixReadOnly, { mode: 0o666, gid: socketGroup.gid });
      this.addresses.push(`unix:${unixReadOnly}`);
    }
    if (this.config.listen) {
      const { host, port } = this.config.listen;
      const hostPart = host.includes(":") ? `[${host}]` : host;
      const tls = this.config.tls;
      const listener: Listener = tls ? { kind: "tls", address: `${hostPart}:${port}` } : { kind: "plaintext", address: `${hostPart}:${port}` };
      const credentials = tls
        ? grpc.ServerCredentials.createSsl(tls.ca ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], true)
        : grpc.ServerCredentials.createInsecure();
      const bound = await this.bind(this.serverFor(listener), `${hostPart}:${port}`, credentials);
      this.addresses.push(`${hostPart}:${bound}`);
      if (!tls) {
        this.logger.warn({ listen: `${hostPart}:${bound}` }, "plaintext gRPC on a loopback address: any local user controls this agent (development only; use the unix socket or mutual TLS)");
      }
    }
    return this.addresses;
  }

  /** Stops accepting calls, lets calls in flight finish within the grace period, then cancels the rest. */
  async shutdown(graceMs: number): Promise<void> {
    for (const { health } of this.servers) for (const name of this.healthNames) health.setStatus(name, "NOT_SERVING");
    await Promise.all(
      this.servers.map(
        ({ server }) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              this.logger.warn({ grace_ms: graceMs }, "calls still running after the grace period: cancelling them");
              server.forceShutdown();
              resolve();
            }, graceMs);
            server.tryShutdown(() => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    for (const { listener } of this.servers) if (listener.kind === "unix") removeUnixSocket(listener.path);
  }

  private serverFor(listener: Listener): grpc.Server {
    const authz = { listener, policy: this.config.authz };
    const server = new grpc.Server({
      // Logging outermost, so its line carries the status the caller finally got (refusals included).
      interceptors: [
        loggingInterceptor(this.logger, (call) => callerOf(authz, call), this.access.onRpc),
        authorizeInterceptor({ ...authz, labelsOf: this.access.labelsOf, audit: this.access.audit, logger: this.logger }),
      ],
      "grpc.max_receive_message_length": 32 * 1024 * 1024,
      "grpc.max_send_message_length": 64 * 1024 * 1024,
    });
    for (const service of this.services) server.addService(service.definition, service.implementation);
    const statusMap: Record<string, "SERVING"> = {};
    for (const name of this.healthNames) statusMap[name] = "SERVING";
    const health = new HealthImplementation(statusMap);
    health.addToServer(server);
    new ReflectionService(this.reflection).addToServer(server);
    this.servers.push({ listener, server, health });
    return server;
  }

  private bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
    return new Promise((resolve, reject) => {
      server.bindAsync(address, credentials, (err, port) => {
        if (err) reject(new Error(`cannot listen on ${address}: ${err.message}`));
        else resolve(port);
      });
    });
  }
}

function loadProtoDefinitions(): protoLoader.PackageDefinition {
  const dir = path.join(protoDir, "qumra", "v1");
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".proto"))
    .map((f) => path.join("qumra", "v1", f));
  return protoLoader.loadSync(files, { includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true });
}
