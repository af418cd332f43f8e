// How the agent wires its --http listener: started when configured, and named in the SPICE address it hands out.
import type { AgentConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { SpiceAddress } from "../spice/connection-info.js";
import { HttpListener } from "./http-server.js";
import { spiceWebSocketPath, type SpiceAcceptor } from "./spice-acceptor.js";
import type { MetricsSource } from "../metrics/metrics-route.js";

/** Starts the --http listener when the config has one (with the agent's TLS files, if any); it serves /metrics too. */
export async function startHttp(config: AgentConfig, logger: Logger, spice: SpiceAcceptor | undefined, metrics?: MetricsSource): Promise<HttpListener | undefined> {
  if (!config.http) return undefined;
  return HttpListener.start({ ...config.http, tls: config.tls, spice, metrics, logger });
}

/** The SPICE address, with the WebSocket path of each VM when --http is on. */
export function withWebSocketPath(config: AgentConfig, spice: () => SpiceAddress | undefined): () => SpiceAddress | undefined {
  if (!config.http) return spice;
  return () => {
    const address = spice();
    return address && { ...address, websocketPath: spiceWebSocketPath };
  };
}
