// GET /metrics as HTTP, for both listeners that serve it (--metrics, and --http beside its WebSockets).
import type http from "node:http";
import type { Logger } from "../logger.js";
import type { Scrape } from "./agent-metrics.js";

export const METRICS_PATH = "/metrics";

export interface MetricsSource {
  scrape(): Promise<Scrape>;
}

/** True when the request is for /metrics (query ignored), which this route then answers. */
export function isMetricsRequest(req: http.IncomingMessage): boolean {
  return (req.url ?? "").split("?", 1)[0] === METRICS_PATH;
}

/** Answers a request for /metrics: the exposition text, 405 for other methods, 500 if collecting failed. */
export function serveMetrics(metrics: MetricsSource, req: http.IncomingMessage, res: http.ServerResponse, log: Logger): void {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD", connection: "close" });
    res.end(`${METRICS_PATH} answers GET (a Prometheus scrape)\n`);
    return;
  }
  metrics.scrape().then(
    ({ contentType, body }) => {
      if (res.destroyed) return;
      res.writeHead(200, { "content-type": contentType, "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : body);
    },
    (err: Error) => {
      log.error({ err }, "collecting metrics failed");
      if (res.destroyed) return;
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end(`collecting metrics failed: ${err.message}\n`);
    },
  );
}
