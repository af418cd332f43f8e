// RPCs by service, method and status code, and how long they took: fed by the logging interceptor
// (api/logging-interceptor.ts), the outermost step on every listener, so refusals count too.
import * as grpc from "@grpc/grpc-js";
import { Counter, Histogram, type Registry } from "prom-client";
import { RPC_ROLES } from "../api/rpc-roles.js";

/** Streams (WatchVms, AttachConsole, StreamDisplay) last minutes or hours: the top buckets are for them. */
const BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600];

/** A method path no service of the agent has: one label value for all of them, whatever a client sends. */
const UNKNOWN = "unknown";

export class RpcMetrics {
  private readonly handled: Counter<"service" | "method" | "code">;
  private readonly duration: Histogram<"service" | "method">;

  constructor(registry: Registry) {
    this.handled = new Counter({
      name: "qumra_rpc_handled_total",
      help: "gRPC calls answered, by service, method and status code (refusals included)",
      labelNames: ["service", "method", "code"],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: "qumra_rpc_duration_seconds",
      help: "Time from a call's start to its status, by service and method (streams: their whole life)",
      labelNames: ["service", "method"],
      buckets: BUCKETS_SECONDS,
      registers: [registry],
    });
  }

  /** One answered call: its path ("/qumra.v1.VmService/GetVm"), status code and duration. */
  observe(path: string, code: number, seconds: number): void {
    const { service, method } = labelsOf(path);
    this.handled.inc({ service, method, code: grpc.status[code] ?? UNKNOWN });
    this.duration.observe({ service, method }, seconds);
  }
}

/**
 * Only paths in the role table become label values: a client may send any path at all, and each
 * distinct one would otherwise be a new series forever. (Today grpc-js answers a path no service has
 * with UNIMPLEMENTED before any interceptor runs, so those are not counted; this holds if that changes.)
 */
export function labelsOf(path: string): { service: string; method: string } {
  if (!Object.hasOwn(RPC_ROLES, path)) return { service: UNKNOWN, method: UNKNOWN };
  const [, service, method] = path.split("/");
  return { service, method };
}
