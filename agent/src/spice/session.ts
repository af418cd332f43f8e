// One SPICE client: the session its main channel opened (its id is the connection id the client's other
// channels link with), the VM and ticket generation it linked with, and its channels. The session ends
// when its main channel closes, and ending it closes every channel it has.
import type { Logger } from "../logger.js";
import type { SpiceChannel } from "./channel.js";
import type { MainChannel } from "./main-channel.js";
import { CHANNEL } from "./wire.js";

export interface SpiceTransport {
  kind: "tcp" | "tls" | "websocket" | "websocket+tls";
  /** host:port */
  peer: string;
  /** The WebSocket path pins the VM: the ticket must be that VM's. */
  vmId?: string;
}

/** Mouse modes (spice.proto mouse_mode flags). */
export const MOUSE_MODE = { SERVER: 1, CLIENT: 2 } as const;

export interface SpiceClientInfo {
  peer: string;
  sessionId: number;
  transport: SpiceTransport["kind"];
  connectedAt: Date;
  /** Linked channel names: main, display, inputs, cursor. */
  channels: string[];
  /** Round trip of the main channel's last PING, in ms. */
  latencyMs?: number;
}

export class Session {
  readonly channels = new Map<number, SpiceChannel>();
  readonly connectedAt = new Date();
  mouseMode: number = MOUSE_MODE.CLIENT;
  latencyMs: number | undefined;
  private endedReason: string | undefined;
  private readonly endHooks: ((reason: string) => void)[] = [];

  constructor(
    readonly id: number,
    readonly vmId: string,
    /** The ticket generation the main channel linked with (on_expiry=disconnect drops by it). */
    readonly generation: number,
    /** SHA-256 of the ticket the main channel linked with: the session's other channels must present it. */
    readonly ticketDigest: Buffer,
    readonly transport: SpiceTransport,
    readonly log: Logger,
  ) {}

  get ended(): string | undefined {
    return this.endedReason;
  }

  onEnd(hook: (reason: string) => void): void {
    this.endHooks.push(hook);
  }

  /** Adds a linked channel; a second link of the same channel replaces the first. */
  attach(channel: SpiceChannel): void {
    const type = channel.channelType;
    this.channels.get(type)?.close("replaced by a new link of the same channel");
    this.channels.set(type, channel);
    channel.onClose((reason) => {
      if (this.channels.get(type) === channel) this.channels.delete(type);
      if (type === CHANNEL.main) this.end(reason);
    });
    if (this.endedReason !== undefined) channel.close(this.endedReason);
  }

  /** Tells the client to reconnect to where the VM went (a live migration); false without a main channel. */
  switchHost(host: string, port: number, tlsPort: number, certSubject?: string): boolean {
    const main = this.channels.get(CHANNEL.main);
    if (!main || this.endedReason !== undefined) return false;
    (main as MainChannel).switchHost(host, port, tlsPort, certSubject);
    return true;
  }

  /** Ends the session; `notify` sends DISCONNECTING on the main channel first (a close by us). */
  end(reason: string, notify = false): void {
    if (this.endedReason !== undefined) return;
    this.endedReason = reason;
    this.channels.get(CHANNEL.main)?.close(reason, notify);
    for (const ch of this.channels.values()) ch.close(reason);
    for (const h of this.endHooks.splice(0)) h(reason);
  }

  info(): SpiceClientInfo {
    return {
      peer: this.transport.peer,
      sessionId: this.id,
      transport: this.transport.kind,
      connectedAt: this.connectedAt,
      channels: [...this.channels.values()].map((c) => c.name),
      latencyMs: this.latencyMs,
    };
  }
}
