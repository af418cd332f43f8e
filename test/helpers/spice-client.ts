// A SPICE client in Node for tests: links one channel the way spice-gtk does (caps, auth selection, the
// ticket encrypted with the public key the server sent), then reads and sends messages.
import net from "node:net";
import tls from "node:tls";
import { constants, createPublicKey, publicEncrypt } from "node:crypto";
import {
  ByteQueue, COMMON_CAP, LINK_HEADER_BYTES, MINI_HEADER_BYTES, capsWords, hasCap, linkMess, linkHeader, messageHeader, parseLinkHeader, parseLinkReply,
  type LinkReplyData,
} from "../../agent/src/spice/wire.js";

export interface LinkOptions {
  port: number;
  host?: string;
  /** Connect with TLS, trusting this CA (PEM). */
  tlsCa?: Buffer;
  channelType: number;
  connectionId?: number;
  /** undefined: send an empty ticket (just the NUL). */
  ticket?: string;
  commonCaps?: number[];
  channelCaps?: number[];
}

export interface Message {
  type: number;
  body: Buffer;
}

/** One channel connection of the test client. */
export class TestChannel {
  readonly messages: Message[] = [];
  private readonly queue = new ByteQueue();
  private waiters = new Set<() => void>();
  ended = false;
  reply: LinkReplyData | undefined;
  linkResult: number | undefined;
  mini = false;

  constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.queue.push(d);
      this.wake();
    });
    const end = (): void => {
      this.ended = true;
      this.wake();
    };
    socket.on("close", end);
    socket.on("error", end);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves with n bytes; rejects if the connection ends first or after timeoutMs. */
  read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${n} bytes within ${timeoutMs} ms`));
      }, timeoutMs);
      const check = (): void => {
        if (this.queue.length >= n) {
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve(this.queue.take(n));
        } else if (this.ended) {
          this.waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`connection ended with ${this.queue.length} of ${n} bytes`));
        }
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves when the server closes the connection. */
  closed(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      const check = (): void => {
        if (!this.ended) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Reads the next message (mini or full header, as linked). */
  async next(timeoutMs = 10_000): Promise<Message> {
    const h = await this.read(this.mini ? MINI_HEADER_BYTES : 18, timeoutMs);
    const type = this.mini ? h.readUInt16LE(0) : h.readUInt16LE(8);
    const size = this.mini ? h.readUInt32LE(2) : h.readUInt32LE(10);
    const m = { type, body: await this.read(size, timeoutMs) };
    this.messages.push(m);
    return m;
  }

  /** Reads messages until one of `type` arrives; returns it. */
  async until(type: number, timeoutMs = 10_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.next(Math.max(1, deadline - Date.now()));
      if (m.type === type) return m;
    }
  }

  send(type: number, body: Buffer = Buffer.alloc(0)): void {
    this.socket.write(Buffer.concat([messageHeader(this.mini, 0n, type, body.length), body]));
  }

  close(): void {
    this.socket.destroy();
  }
}

export function connect(o: { port: number; host?: string; tlsCa?: Buffer }): Promise<TestChannel> {
  const host = o.host ?? "127.0.0.1";
  return new Promise((resolve, reject) => {
    const socket = o.tlsCa ? tls.connect({ host, port: o.port, ca: o.tlsCa }) : net.connect({ host, port: o.port });
    socket.once(o.tlsCa ? "secureConnect" : "connect", () => {
      socket.off("error", reject);
      resolve(new TestChannel(socket));
    });
    socket.once("error", reject);
  });
}

/** spice-gtk's common caps: auth selection, SPICE auth, mini header. */
export const CLIENT_COMMON_CAPS = capsWords([COMMON_CAP.AUTH_SELECTION, COMMON_CAP.AUTH_SPICE, COMMON_CAP.MINI_HEADER]);

/** Links a channel; `linkResult` holds the server's verdict (0 = linked). */
export async function link(o: LinkOptions): Promise<TestChannel> {
  const ch = await connect(o);
  const commonCaps = o.commonCaps ?? CLIENT_COMMON_CAPS;
  const mess = linkMess({ connectionId: o.connectionId ?? 0, channelType: o.channelType, channelId: 0, commonCaps, channelCaps: o.channelCaps ?? [] });
  ch.socket.write(Buffer.concat([linkHeader(mess.length), mess]));
  const header = parseLinkHeader(await ch.read(LINK_HEADER_BYTES));
  ch.reply = parseLinkReply(await ch.read(header.size));
  if (ch.reply.error !== 0) {
    ch.linkResult = ch.reply.error;
    return ch;
  }
  if (hasCap(commonCaps, COMMON_CAP.AUTH_SELECTION) && hasCap(ch.reply.commonCaps, COMMON_CAP.AUTH_SELECTION)) ch.socket.write(Buffer.from([1, 0, 0, 0]));
  ch.socket.write(encryptTicket(ch.reply.publicKeyDer, o.ticket ?? ""));
  ch.linkResult = (await ch.read(4)).readUInt32LE(0);
  ch.mini = hasCap(commonCaps, COMMON_CAP.MINI_HEADER) && hasCap(ch.reply.commonCaps, COMMON_CAP.MINI_HEADER);
  return ch;
}

/** The ticket plus its NUL, RSA-OAEP (SHA-1) with the server's key, as spice-gtk sends it. */
export function encryptTicket(publicKeyDer: Buffer, ticket: string): Buffer {
  const key = createPublicKey({ key: publicKeyDer, format: "der", type: "spki" });
  return publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, Buffer.from(`${ticket}\0`));
}
