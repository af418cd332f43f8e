// The --metrics listener: HTTP (HTTPS with the agent's certificate) serving only GET /metrics. Every
// connection is bounded in time and number, so slow or garbage clients cannot pile up.
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { TlsFiles } from "../config.js";
import type { Logger } from "../logger.js";
import { isMetricsRequest, METRICS_PATH, serveMetrics, type MetricsSource } from "./metrics-route.js";

/** Scrapers are a few Prometheus servers; more connections than this are refused at accept. */
const MAX_CONNECTIONS = 64;
/** Headers must arrive within this (a slowloris client is cut), and a whole request within the other. */
const HEADERS_TIMEOUT_MS = 5000;
const REQUEST_TIMEOUT_MS = 10_000;

export interface MetricsListenerOptions {
  host: string;
  port: number;
  tls?: TlsFiles;
  metrics: MetricsSource;
  logger: Logger;
}

export class MetricsListener {
  private readonly server: http.Server;
  /** The bound address, host:port (brackets around IPv6). */
  address = "";

  private constructor(options: MetricsListenerOptions) {
    const log = options.logger.child({ component: "metrics" });
    const serverOptions: http.ServerOptions = { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: 5000 };
    this.server = options.tls ? https.createServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key }) : http.createServer(serverOptions);
    this.server.maxConnections = MAX_CONNECTIONS;
    // An idle connection (no request started) is closed too, not only a slow request.
    this.server.setTimeout(REQUEST_TIMEOUT_MS, (socket: Socket) => socket.destroy());
    this.server.on("request", (req, res) => {
      if (isMetricsRequest(req)) return serveMetrics(options.metrics, req, res, log);
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end(`not found: this listener serves ${METRICS_PATH}\n`);
    });
    this.server.on("clientError", (err, socket) => {
      log.debug({ err }, "bad HTTP request on the metrics listener");
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
      else socket.destroy();
    });
  }

  /** Binds host:port (0: an ephemeral port) and resolves once listening. */
  static async start(options: MetricsListenerOptions): Promise<MetricsListener> {
    const listener = new MetricsListener(options);
    const where = hostPort(options.host, options.port);
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error): void => reject(new Error(`cannot listen on --metrics ${where}: ${err.message}`));
      listener.server.once("error", failed);
      listener.server.listen(options.port, options.host, () => {
        listener.server.off("error", failed);
        resolve();
      });
    });
    const bound = listener.server.address();
    listener.address = typeof bound === "object" && bound ? hostPort(bound.address, bound.port) : String(bound);
    listener.server.on("error", (err) => options.logger.error({ err }, "metrics listener error"));
    return listener;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
