// The agent's one Prometheus registry: every qumra_* family below registers here, beside prom-client's
// default process and Node.js metrics under qumra_agent_ (so they never clash with another exporter's
// process_* on the same host, e.g. node_exporter's or a sidecar's).
import { collectDefaultMetrics, Registry } from "prom-client";

export const DEFAULT_METRICS_PREFIX = "qumra_agent_";

export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: DEFAULT_METRICS_PREFIX });
  return registry;
}
