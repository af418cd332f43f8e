// The agent's SPICE server for stock clients (spice-gtk's remote-viewer and spicy, spice-html5 through
// the WebSocket bridge): plaintext and TLS listeners, the link stage of every channel connection, and
// the sessions. A ticket picks the VM; a session's other channels link with its id and its ticket. By
// default a new client of a VM replaces the previous one, as spice-server does (--spice-multi-client
// keeps both). Every client has its own channels, pace and encoder state, and is dropped alone.
import { createHash, randomInt, timingSafeEqual } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import type { Duplex } from "node:stream";
import type { Logger } from "../logger.js";
import type { DisplayDomain } from "../display/display-domain.js";
import type { ImageCompression } from "../display/types.js";
import { caOf, type SpiceAddress } from "./connection-info.js";
import type { TicketBook } from "./tickets.js";
import { linkChannel, makeSpiceKey, type LinkOutcome, type LinkRequest } from "./link.js";
import { Session, type SpiceClientInfo, type SpiceTransport } from "./session.js";
import type { SpiceChannel } from "./channel.js";
import { MainChannel } from "./main-channel.js";
import { DisplayChannel } from "./display-channel.js";
import { InputsChannel } from "./inputs-channel.js";
import { CursorChannel } from "./cursor-channel.js";
import { CHANNEL, CHANNEL_NAMES, INPUTS_CAP, LINK_ERR, MAIN_CAP, capsWords } from "./wire.js";

export type { SpiceTransport, SpiceClientInfo } from "./session.js";

export interface SpiceServerOptions {
  host: string;
  /** Plaintext port (0: ephemeral); undefined: none. */
  port?: number;
  /** TLS port (0: ephemeral); undefined: none. */
  tlsPort?: number;
  /** The agent's certificate and key for the TLS port, and PEMs that may hold the CA that issued it. */
  tls?: { cert: Buffer; key: Buffer; caCandidates: Buffer[] };
  /** Keep earlier clients of a VM when a new one links (default: the new one replaces them). */
  multiClient: boolean;
  /** The agent's --spice-image-compression; a VM's spec overrides it. */
  imageCompression: ImageCompression;
  linkTimeoutMs?: number;
  /** How often the main channel PINGs for the session's latency (default 5 s). */
  pingIntervalMs?: number;
}

export type DisplayClientEvent = "DISPLAY_CLIENT_CONNECTED" | "DISPLAY_CLIENT_REFUSED" | "DISPLAY_CLIENT_DISCONNECTED";

/** What the server needs to know of VMs. */
export interface SpiceVms {
  /** The VM's name and spec compression; undefined when there is no such VM. */
  describe(vmId: string): { name: string; imageCompression?: ImageCompression } | undefined;
  /** Records a client event of the VM (VmManager.noteDisplayClient). */
  note(vmId: string, type: DisplayClientEvent, reason: string): void;
}

export interface SpiceServerDeps {
  tickets: TicketBook;
  display: DisplayDomain;
  vms: SpiceVms;
  logger: Logger;
  options: SpiceServerOptions;
}

/** Connections still linking at once; more are refused (a flood of idle sockets costs nothing else). */
const MAX_LINKING = 256;

type Grant = { result: typeof LINK_ERR.OK; vmId: string; generation: number; digest: Buffer; session?: Session };
type Refusal = { result: typeof LINK_ERR.PERMISSION_DENIED | typeof LINK_ERR.BAD_CONNECTION_ID | typeof LINK_ERR.CHANNEL_NOT_AVAILABLE; reason: string; vmId?: string };
type Verdict = Grant | Refusal;

/** Our channel caps: the main channel sends NAME and UUID, the inputs channel takes KEY_SCANCODE. */
function channelCaps(channelType: number): number[] {
  if (channelType === CHANNEL.main) return capsWords([MAIN_CAP.NAME_AND_UUID]);
  if (channelType === CHANNEL.inputs) return capsWords([INPUTS_CAP.KEY_SCANCODE]);
  return [];
}

export class SpiceServer {
  private readonly key = makeSpiceKey();
  private readonly sessions = new Map<number, Session>();
  private readonly linking = new Set<Duplex>();
  private readonly listeners: net.Server[] = [];
  private readonly bound: { port?: number; tlsPort?: number } = {};
  private readonly log: Logger;
  private closing = false;

  constructor(private readonly deps: SpiceServerDeps) {
    this.log = deps.logger.child({ component: "spice" });
    deps.tickets.on("expired", this.onTicketExpired);
  }

  /** Opens the configured listeners; resolves with the bound address. */
  async listen(): Promise<SpiceAddress> {
    const { host, port, tlsPort, tls: files } = this.deps.options;
    if (port !== undefined) {
      const server = net.createServer((socket) => this.accept(socket, { kind: "tcp", peer: peerOf(socket) }));
      this.bound.port = await this.open(server, host, port);
    }
    if (tlsPort !== undefined) {
      if (!files) throw new Error("the SPICE TLS port needs the agent's certificate and key");
      // Stock clients present no certificate: the ticket is their credential.
      const server = tls.createServer({ cert: files.cert, key: files.key, requestCert: false }, (socket) => this.accept(socket, { kind: "tls", peer: peerOf(socket) }));
      server.on("tlsClientError", (err, socket) => this.log.info({ peer: peerOf(socket), reason: err.message }, "SPICE TLS handshake failed"));
      this.bound.tlsPort = await this.open(server, host, tlsPort);
    }
    this.log.info({ host, port: this.bound.port, tls_port: this.bound.tlsPort, multi_client: this.deps.options.multiClient }, "SPICE server listening");
    return this.address();
  }

  /** Runs the SPICE protocol on one connection: a TCP or TLS socket, or a WebSocket's byte stream. */
  accept(stream: Duplex, transport: SpiceTransport): void {
    const log = this.log.child({ peer: transport.peer, transport: transport.kind });
    if (this.closing || this.linking.size >= MAX_LINKING) {
      log.warn({ linking: this.linking.size }, this.closing ? "SPICE connection refused: shutting down" : "SPICE connection refused: too many connections linking");
      stream.destroy();
      return;
    }
    if (stream instanceof net.Socket) stream.setNoDelay(true);
    this.linking.add(stream);
    void linkChannel(stream, { key: this.key, channelCaps, timeoutMs: this.deps.options.linkTimeoutMs }, (req) => this.authorize(req, transport)).then((outcome) => {
      this.linking.delete(stream);
      if (outcome.ok) this.link(stream, outcome, transport, log);
      else this.refused(outcome, transport, log);
    });
  }

  /** Where clients connect (GetDisplayConnection). */
  address(): SpiceAddress {
    const files = this.deps.options.tls;
    const ca = files ? caOf(files.cert, files.caCandidates) : undefined;
    return { host: this.deps.options.host, port: this.bound.port, tlsPort: this.bound.tlsPort, ...ca };
  }

  /** The VM's connected clients (Vm.spice_clients). */
  clientsOf(vmId: string): SpiceClientInfo[] {
    return [...this.sessions.values()].filter((s) => s.vmId === vmId && !s.ended).map((s) => s.info());
  }

  /** Ends the VM's sessions (it stopped, crashed or was deleted). */
  endVm(vmId: string, reason: string): void {
    for (const s of [...this.sessions.values()]) if (s.vmId === vmId) s.end(reason, true);
  }

  /**
   * The VM migrated: its clients are told to switch to the destination's SPICE server (spice-gtk and
   * remote-viewer reconnect there with the same ticket, which the migration carried over); sessions
   * still here after `graceMs` are ended.
   */
  switchVm(vmId: string, to: { host: string; port: number; tlsPort: number }, graceMs = 10_000): void {
    for (const s of [...this.sessions.values()]) {
      if (s.vmId !== vmId || s.ended !== undefined) continue;
      const sent = s.switchHost(to.host, to.port, to.tlsPort);
      s.log.info({ to, sent }, "SPICE client told to switch to the VM's new host");
      setTimeout(() => s.end(`the VM migrated to ${to.host}`, true), graceMs).unref();
    }
  }

  /** DISCONNECTING to every client, then closes the listeners. */
  async close(): Promise<void> {
    this.closing = true;
    this.deps.tickets.off("expired", this.onTicketExpired);
    for (const s of [...this.sessions.values()]) s.end("the agent is shutting down", true);
    for (const stream of this.linking) stream.destroy();
    await Promise.all(
      this.listeners.map(
        (server) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 3000);
            server.close(() => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }

  private open(server: net.Server, host: string, port: number): Promise<number> {
    this.listeners.push(server);
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        server.on("error", (err) => this.log.error({ err }, "SPICE listener error"));
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  private readonly onTicketExpired = (vmId: string, generation: number, onExpiry: "keep" | "disconnect"): void => {
    if (onExpiry !== "disconnect") return;
    for (const s of [...this.sessions.values()]) if (s.vmId === vmId && s.generation === generation) s.end("the ticket expired", true);
  };

  /** Who may link: a main channel by the VM's live ticket, another channel by its session's id and ticket. */
  private authorize(req: LinkRequest, transport: SpiceTransport): Verdict {
    const deny = (vmId: string | undefined, reason: string): Refusal => ({ result: LINK_ERR.PERMISSION_DENIED, reason, vmId });
    const notOffered = (vmId: string): Refusal => ({ result: LINK_ERR.CHANNEL_NOT_AVAILABLE, reason: `channel ${req.channelType}:${req.channelId} is not offered`, vmId });
    if (req.ticket === undefined) return deny(transport.vmId, "the ticket was not encrypted with this server's key");
    if (req.ticket.length === 0) return deny(transport.vmId, "no ticket given");
    const digest = createHash("sha256").update(req.ticket).digest();
    if (req.channelType === CHANNEL.main) {
      const check = this.deps.tickets.check(req.ticket, transport.vmId);
      if (!check.ok) return deny(check.vmId, check.reason);
      if (req.channelId !== 0) return notOffered(check.vmId);
      return { result: LINK_ERR.OK, vmId: check.vmId, generation: check.generation, digest };
    }
    const session = this.sessions.get(req.connectionId);
    if (!session || session.ended !== undefined) {
      // Only a client holding a live ticket learns that a session id is unknown.
      const check = this.deps.tickets.check(req.ticket, transport.vmId);
      if (!check.ok) return deny(check.vmId, check.reason);
      return { result: LINK_ERR.BAD_CONNECTION_ID, reason: `no session ${req.connectionId} (a ${CHANNEL_NAMES.get(req.channelType) ?? "unknown"} channel links with its main channel's session id)`, vmId: check.vmId };
    }
    if (transport.vmId !== undefined && transport.vmId !== session.vmId) return deny(transport.vmId, "the session is another VM's");
    if (!timingSafeEqual(digest, session.ticketDigest)) return deny(session.vmId, "not the ticket this session linked with");
    if (!CHANNEL_NAMES.has(req.channelType) || req.channelId !== 0) return notOffered(session.vmId);
    return { result: LINK_ERR.OK, vmId: session.vmId, generation: session.generation, digest, session };
  }

  private refused(outcome: Extract<LinkOutcome<Verdict>, { ok: false }>, transport: SpiceTransport, log: Logger): void {
    const vmId = outcome.verdict && "vmId" in outcome.verdict ? outcome.verdict.vmId : transport.vmId;
    const channel = outcome.request ? (CHANNEL_NAMES.get(outcome.request.channelType) ?? String(outcome.request.channelType)) : undefined;
    log.warn({ vm_id: vmId, channel, reason: outcome.reason }, "SPICE client refused");
    if (vmId !== undefined && this.deps.vms.describe(vmId)) this.deps.vms.note(vmId, "DISPLAY_CLIENT_REFUSED", `${transport.peer}: ${outcome.reason}`);
  }

  private link(stream: Duplex, outcome: Extract<LinkOutcome<Verdict>, { ok: true }>, transport: SpiceTransport, log: Logger): void {
    const { request: req, leftover } = outcome;
    const grant = outcome.verdict as Grant;
    const vm = this.deps.vms.describe(grant.vmId);
    if (!vm || this.closing) {
      stream.destroy();
      return;
    }
    if (req.channelType === CHANNEL.main) {
      this.startSession(stream, req, leftover, grant, vm, transport, log);
      return;
    }
    const session = grant.session!;
    if (session.ended !== undefined) {
      stream.destroy();
      return;
    }
    const init = { stream, channelType: req.channelType, miniHeader: req.miniHeader, leftover, log: session.log };
    let channel: SpiceChannel;
    switch (req.channelType) {
      case CHANNEL.display:
        channel = new DisplayChannel({
          ...init,
          display: this.deps.display,
          vmId: session.vmId,
          compression: vm.imageCompression ?? this.deps.options.imageCompression,
          onDisplayEnd: (reason) => session.end(reason, true),
        });
        break;
      case CHANNEL.inputs:
        channel = new InputsChannel({ ...init, display: this.deps.display, vmId: session.vmId, session });
        break;
      default:
        channel = new CursorChannel(init);
    }
    session.attach(channel);
    session.log.debug({ channel: channel.name }, "SPICE channel linked");
  }

  private startSession(stream: Duplex, req: LinkRequest, leftover: Buffer, grant: Grant, vm: { name: string }, transport: SpiceTransport, log: Logger): void {
    const { vmId } = grant;
    if (!this.deps.options.multiClient) {
      for (const old of [...this.sessions.values()]) if (old.vmId === vmId) old.end(`replaced by a new client from ${transport.peer}`, true);
    }
    const id = this.newSessionId();
    const session = new Session(id, vmId, grant.generation, grant.digest, transport, log.child({ vm_id: vmId, session_id: id }));
    this.sessions.set(id, session);
    session.onEnd((reason) => {
      this.sessions.delete(id);
      session.log.info({ reason }, "SPICE client disconnected");
      this.deps.vms.note(vmId, "DISPLAY_CLIENT_DISCONNECTED", `${transport.peer}: ${reason}`);
    });
    session.attach(new MainChannel({ stream, channelType: CHANNEL.main, miniHeader: req.miniHeader, leftover, log: session.log, session, vmName: vm.name, clientCaps: req.channelCaps, pingIntervalMs: this.deps.options.pingIntervalMs }));
    session.log.info("SPICE client connected");
    this.deps.vms.note(vmId, "DISPLAY_CLIENT_CONNECTED", `${transport.peer} over ${transport.kind}, session ${id}`);
  }

  private newSessionId(): number {
    for (;;) {
      const id = randomInt(1, 0x1_0000_0000);
      if (!this.sessions.has(id)) return id;
    }
  }
}

function peerOf(socket: net.Socket): string {
  const host = socket.remoteAddress ?? "?";
  return `${host.includes(":") ? `[${host}]` : host}:${socket.remotePort ?? 0}`;
}
