// The gRPC server: qumra.v1 services, grpc.health.v1, server reflection, TLS, listening and shutdown.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { HealthImplementation } from "grpc-health-check";
import { ReflectionService } from "@grpc/reflection";
import { readdirSync } from "node:fs";
import path from "node:path";
import type { AgentConfig } from "../config.js";
import type { Logger } from "../logger.js";
import { protoDir } from "../paths.js";
import { loggingInterceptor } from "./logging-interceptor.js";

export interface ServiceBinding {
  /** Full name, e.g. "qumra.v1.HostService" (used for health status). */
  name: string;
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export class AgentServer {
  private readonly server: grpc.Server;
  private readonly health: HealthImplementation;
  private readonly healthNames: string[];
  readonly addresses: string[] = [];

  constructor(
    private readonly config: AgentConfig,
    private readonly logger: Logger,
    services: ServiceBinding[],
  ) {
    this.server = new grpc.Server({
      interceptors: [loggingInterceptor(logger)],
      "grpc.max_receive_message_length": 32 * 1024 * 1024,
      "grpc.max_send_message_length": 64 * 1024 * 1024,
    });
    for (const service of services) this.server.addService(service.definition, service.implementation);

    const statusMap: Record<string, "SERVING"> = { "": "SERVING" };
    for (const service of services) statusMap[service.name] = "SERVING";
    this.healthNames = Object.keys(statusMap);
    this.health = new HealthImplementation(statusMap);
    this.health.addToServer(this.server);

    new ReflectionService(loadProtoDefinitions()).addToServer(this.server);
  }

  /** Binds every configured address; resolves with the addresses actually bound (ports resolved). */
  async listen(): Promise<string[]> {
    const credentials = this.credentials();
    if (this.config.listen) {
      const { host, port } = this.config.listen;
      const hostPart = host.includes(":") ? `[${host}]` : host;
      const bound = await this.bind(`${hostPart}:${port}`, credentials);
      this.addresses.push(`${hostPart}:${bound}`);
    }
    if (this.config.unix) {
      // The unix socket is for local clients: file permissions guard it, so no TLS on it.
      await this.bind(`unix:${this.config.unix}`, grpc.ServerCredentials.createInsecure());
      this.addresses.push(`unix:${this.config.unix}`);
    }
    return this.addresses;
  }

  /** Stops accepting calls, lets calls in flight finish within the grace period, then cancels the rest. */
  async shutdown(graceMs: number): Promise<void> {
    for (const name of this.healthNames) this.health.setStatus(name, "NOT_SERVING");
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.logger.warn({ grace_ms: graceMs }, "calls still running after the grace period: cancelling them");
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private credentials(): grpc.ServerCredentials {
    const tls = this.config.tls;
    if (!tls) return grpc.ServerCredentials.createInsecure();
    return grpc.ServerCredentials.createSsl(tls.ca ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], Boolean(tls.ca));
  }

  private bind(address: string, credentials: grpc.ServerCredentials): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) => {
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
