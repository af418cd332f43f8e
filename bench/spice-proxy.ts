// A counting TCP proxy between a SPICE client and a server, inside the benchmark: it forwards every byte
// unchanged, counts bytes per channel and direction, and cuts the server→client stream of each channel
// into messages stamped with the time their last byte went through (spice-wire.ts). Measuring on the wire
// works the same for qumra's server and for qemu's, with any client.
import net from "node:net";
import { EventEmitter } from "node:events";
import { ClientLinkParser, ServerStreamParser, type SpiceMessage } from "./spice-wire.js";

export interface ProxiedChannel {
  /** SPICE channel type (1 main, 2 display, …), 0 until the client's link message is through. */
  channelType: number;
  openedAt: number;
  bytesDown: number;
  bytesUp: number;
  /** Server→client messages in order (only the display channel's are kept; others are counted). */
  messages: SpiceMessage[];
  /** With `record`, the raw bytes each way (for tests). */
  recorded?: { down: Buffer[]; up: Buffer[] };
  closed: boolean;
}

export interface SpiceProxyEvents {
  /** A display-channel message went through. */
  message: [channel: ProxiedChannel, message: SpiceMessage];
}

export class SpiceProxy extends EventEmitter<SpiceProxyEvents> {
  readonly channels: ProxiedChannel[] = [];
  private readonly sockets = new Set<net.Socket>();
  private server?: net.Server;
  port = 0;

  constructor(private readonly upstream: { host: string; port: number }, private readonly options: { record?: boolean; now?: () => number } = {}) {
    super();
  }

  async listen(): Promise<number> {
    const server = net.createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Display channels opened so far, oldest first. */
  displays(): ProxiedChannel[] {
    return this.channels.filter((c) => c.channelType === 2);
  }

  private accept(client: net.Socket): void {
    const now = this.options.now ?? (() => performance.now());
    const upstream = net.connect(this.upstream.port, this.upstream.host);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.sockets.add(client).add(upstream);
    const channel: ProxiedChannel = { channelType: 0, openedAt: now(), bytesDown: 0, bytesUp: 0, messages: [], closed: false };
    if (this.options.record) channel.recorded = { down: [], up: [] };
    this.channels.push(channel);
    const link = new ClientLinkParser();
    const parser = new ServerStreamParser(() => link.link?.miniHeader ?? false);
    let broken = false;

    client.on("data", (chunk: Buffer) => {
      channel.bytesUp += chunk.length;
      channel.recorded?.up.push(chunk);
      if (!link.link && !broken) {
        try {
          channel.channelType = link.feed(chunk)?.channelType ?? 0;
        } catch {
          broken = true; // not SPICE: still forwarded, just not parsed
        }
      }
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on("drain", () => client.resume());
    upstream.on("data", (chunk: Buffer) => {
      channel.bytesDown += chunk.length;
      channel.recorded?.down.push(chunk);
      if (!broken) {
        try {
          for (const m of parser.feed(chunk, now())) {
            if (channel.channelType !== 2) continue;
            channel.messages.push(m);
            this.emit("message", channel, m);
          }
        } catch {
          broken = true;
        }
      }
      if (!client.write(chunk)) upstream.pause();
    });
    client.on("drain", () => upstream.resume());
    const close = () => {
      channel.closed = true;
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on("close", close);
      s.on("error", close);
    }
  }

  /** Waits for the next display message of `channel()` that passes `test`. */
  waitFor(channel: () => ProxiedChannel | undefined, test: (m: SpiceMessage) => boolean, timeoutMs: number, what: string): Promise<SpiceMessage> {
    return new Promise((resolve, reject) => {
      const onMessage = (c: ProxiedChannel, m: SpiceMessage) => {
        if (c !== channel() || !test(m)) return;
        clearTimeout(timer);
        this.off("message", onMessage);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.off("message", onMessage);
        reject(new Error(`SPICE proxy: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on("message", onMessage);
    });
  }

  /** Resolves once `channel` has been silent for `ms` (or after `maxMs` regardless: a clock may tick). */
  quiet(channel: ProxiedChannel, ms: number, maxMs = 2000): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(silence);
        clearTimeout(cap);
        this.off("message", onMessage);
        resolve();
      };
      let silence = setTimeout(done, ms);
      const cap = setTimeout(done, maxMs);
      const onMessage = (c: ProxiedChannel) => {
        if (c !== channel) return;
        clearTimeout(silence);
        silence = setTimeout(done, ms);
      };
      this.on("message", onMessage);
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
