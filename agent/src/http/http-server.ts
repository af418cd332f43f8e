// The agent's --http listener: HTTP (HTTPS with the agent's certificate) for browsers. Today it serves
// SPICE over WebSocket on /spice/VM_ID, each channel one WebSocket (subprotocol "binary") whose frames
// carry the raw SPICE byte stream, so spice-html5 connects with no websockify in between.
import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import type { TlsFiles } from "../config.js";
import type { Logger } from "../logger.js";
import { validateVmId } from "../vm/spec.js";
import { websocketDuplex, type StreamCounts } from "./websocket-duplex.js";
import { vmIdOfSpicePath, type SpiceAcceptor } from "./spice-acceptor.js";
import { isMetricsRequest, serveMetrics, type MetricsSource } from "../metrics/metrics-route.js";

export interface HttpListenerOptions {
  host: string;
  port: number;
  /** With TLS files the listener serves HTTPS and WSS. Client certificates are not asked for: the SPICE ticket authenticates. */
  tls?: TlsFiles;
  /** Where SPICE WebSockets go; without one, /spice/ answers 503. */
  spice?: SpiceAcceptor;
  /** What GET /metrics answers; without it, 404. */
  metrics?: MetricsSource;
  logger: Logger;
  /** The largest frame a client may send (SPICE client messages are small; spice-html5's file chunks are 1 KiB). */
  maxPayload?: number;
}

const DEFAULT_MAX_PAYLOAD = 1 << 20;
/** How long a closing WebSocket gets for the close handshake at shutdown before its socket is cut. */
const CLOSE_GRACE_MS = 1000;

export class HttpListener {
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;
  private readonly logger: Logger;
  private readonly sockets = new Set<WebSocket>();
  private closing = false;
  /** The bound address, host:port (brackets around IPv6), once listening. */
  address = "";

  private constructor(private readonly options: HttpListenerOptions) {
    this.logger = options.logger.child({ component: "http" });
    const tls = options.tls;
    const serverOptions: http.ServerOptions = { headersTimeout: 10_000, requestTimeout: 10_000 };
    this.server = tls ? https.createServer({ ...serverOptions, cert: tls.cert, key: tls.key }) : http.createServer(serverOptions);
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
      // spice-html5 offers "binary"; a client that offers nothing is served too.
      handleProtocols: (offered) => (offered.has("binary") ? "binary" : false),
    });
    this.server.on("request", (req, res) => this.onRequest(req, res));
    this.server.on("upgrade", (req, socket, head) => this.onUpgrade(req, socket, head));
    this.server.on("clientError", (err, socket) => {
      this.logger.debug({ err, peer: peerOf(socket) }, "bad HTTP request");
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
      else socket.destroy();
    });
  }

  /** Binds host:port (port 0: an ephemeral one) and resolves once listening. */
  static async start(options: HttpListenerOptions): Promise<HttpListener> {
    const listener = new HttpListener(options);
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error): void => reject(new Error(`cannot listen on --http ${hostPort(options.host, options.port)}: ${err.message}`));
      listener.server.once("error", failed);
      listener.server.listen(options.port, options.host, () => {
        listener.server.off("error", failed);
        resolve();
      });
    });
    const bound = listener.server.address();
    listener.address = typeof bound === "object" && bound ? hostPort(bound.address, bound.port) : String(bound);
    listener.server.on("error", (err) => listener.logger.error({ err }, "HTTP listener error"));
    return listener;
  }

  get tls(): boolean {
    return Boolean(this.options.tls);
  }

  /** Stops listening, closes every WebSocket (1001, going away) and cuts those that do not finish closing in time. */
  async close(): Promise<void> {
    this.closing = true;
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    const closed = [...this.sockets].map(
      (ws) =>
        new Promise<void>((resolve) => {
          ws.once("close", () => resolve());
          ws.close(1001, "qumra-agent is shutting down");
          setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
        }),
    );
    await Promise.all([stopped, ...closed]);
    this.wss.close();
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.options.metrics && isMetricsRequest(req)) return serveMetrics(this.options.metrics, req, res, this.logger);
    const isSpice = vmIdOfSpicePath(req.url ?? "") !== undefined;
    const [status, text] = isSpice ? [426, "this is a SPICE WebSocket endpoint: connect with a WebSocket (subprotocol binary)"] : [404, "not found"];
    this.logger.info({ method: req.method, path: req.url, peer: peerOf(req.socket), status }, "HTTP request refused");
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", connection: "close", ...(isSpice ? { upgrade: "websocket" } : {}) });
    res.end(`${text}\n`);
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", (err) => this.logger.debug({ err }, "WebSocket upgrade socket error")); // a client's reset must not throw
    const peer = peerOf(req.socket);
    const refuse = (status: number, text: string): void => {
      this.logger.info({ path: req.url, peer, status, reason: text }, "WebSocket refused");
      refuseUpgrade(socket, status, text);
    };
    const vmId = vmIdOfSpicePath(req.url ?? "");
    if (vmId === undefined) return refuse(404, "not found: SPICE WebSockets are at /spice/VM_ID");
    try {
      validateVmId(vmId);
    } catch (err) {
      return refuse(400, (err as Error).message);
    }
    const spice = this.options.spice;
    if (!spice) return refuse(503, "this agent serves no SPICE");
    if (this.closing) return refuse(503, "qumra-agent is shutting down");
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onWebSocket(ws, spice, vmId, peer));
  }

  private onWebSocket(ws: WebSocket, spice: SpiceAcceptor, vmId: string, peer: string): void {
    if (this.closing) return ws.close(1001, "qumra-agent is shutting down");
    const log = this.logger.child({ vm_id: vmId, peer });
    const started = Date.now();
    const counts: StreamCounts = { bytesIn: 0, bytesOut: 0 };
    this.sockets.add(ws);
    ws.once("close", (code: number, reason: Buffer) => {
      this.sockets.delete(ws);
      log.info({ code, reason: reason.toString(), duration_ms: Date.now() - started, bytes_in: counts.bytesIn, bytes_out: counts.bytesOut }, "SPICE WebSocket closed");
    });
    log.debug({ protocol: ws.protocol }, "SPICE WebSocket open");
    const stream = websocketDuplex(ws, log, counts);
    try {
      spice.accept(stream, { kind: this.tls ? "websocket+tls" : "websocket", peer, vmId });
    } catch (err) {
      // Nobody holds the stream now, so it must not emit 'error': close the WebSocket as a server error instead.
      log.error({ err }, "the SPICE server failed to take the WebSocket");
      ws.close(1011, "SPICE server error");
      stream.destroy();
    }
  }
}

/** Answers an upgrade request with a plain HTTP error and closes the socket. */
function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function peerOf(socket: Duplex & { remoteAddress?: string; remotePort?: number }): string {
  return hostPort(socket.remoteAddress ?? "?", socket.remotePort ?? 0);
}
