// The --health-listen listener: plaintext gRPC serving only grpc.health.v1.Health, for kubelet's native
// gRPC probe (which speaks neither mutual TLS nor unix sockets). It answers with the same status map as
// the API listeners ("" and each qumra.v1 service) and exposes no VM data, so any address is allowed;
// every other service on it is UNIMPLEMENTED (grpc-js answers so for a method no service registered).
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "../logger.js";

export interface HealthListenerOptions {
  host: string;
  port: number;
  /** The service names the API listeners report ("" first), from AgentServer.healthNames. */
  names: readonly string[];
  logger: Logger;
}

export class HealthListener {
  private readonly server = new grpc.Server();
  private readonly health: HealthImplementation;
  /** The bound address, host:port (brackets around IPv6). */
  address = "";

  private constructor(private readonly names: readonly string[]) {
    this.health = new HealthImplementation(Object.fromEntries(names.map((n) => [n, "SERVING" as const])));
    this.health.addToServer(this.server);
  }

  /** Binds host:port (0: an ephemeral port) and resolves once listening. */
  static async start(options: HealthListenerOptions): Promise<HealthListener> {
    const listener = new HealthListener(options.names);
    const hostPart = options.host.includes(":") ? `[${options.host}]` : options.host;
    const port = await new Promise<number>((resolve, reject) => {
      listener.server.bindAsync(`${hostPart}:${options.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
        if (err) reject(new Error(`cannot listen on --health-listen ${hostPart}:${options.port}: ${err.message}`));
        else resolve(bound);
      });
    });
    listener.address = `${hostPart}:${port}`;
    return listener;
  }

  private stopping = false;

  /** Shutdown has begun: probes and watchers see NOT_SERVING while the API listeners drain. */
  notServing(): void {
    // Once: HealthImplementation tells watchers every setStatus, even one that changes nothing.
    if (this.stopping) return;
    this.stopping = true;
    for (const name of this.names) this.health.setStatus(name, "NOT_SERVING");
  }

  /**
   * Closes the listener once the agent has drained. Health calls are instant; only Watch streams stay
   * open, and they have already been told NOT_SERVING, so they are cancelled rather than waited for.
   */
  close(): Promise<void> {
    this.notServing();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 200);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
