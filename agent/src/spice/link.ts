// The link stage of one SPICE channel connection (spice-server's reds.cpp, spice-gtk's spice-channel.c):
// the client's link header and SpiceLinkMess, our reply with an RSA-1024 public key and our caps, its
// auth mechanism and its ticket encrypted with that key (OAEP, SHA-1), then a u32 result. The stage is
// bounded in bytes and in time; who may link (tickets, sessions) is decided by the caller's authorize().
import { generateKeyPairSync, privateDecrypt, constants, type KeyObject } from "node:crypto";
import type { Duplex } from "node:stream";
import {
  AUTH_SPICE, ByteQueue, COMMON_CAP, LINK_ERR, LINK_HEADER_BYTES, LINK_MAGIC, LINK_MESS_BYTES, LINK_PUBKEY_BYTES, MAX_LINK_BYTES,
  PROTOCOL_MAJOR, TICKET_CIPHER_BYTES, WireError, capsWords, hasCap, linkReply, parseLinkHeader, parseLinkMess, u32Buffer, type LinkMess,
} from "./wire.js";

/** The agent's link key: made at start, kept in memory only. */
export interface SpiceKey {
  privateKey: KeyObject;
  /** DER SubjectPublicKeyInfo, 162 bytes (what clients parse with d2i_PUBKEY). */
  publicDer: Buffer;
}

export function makeSpiceKey(): SpiceKey {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 1024 });
  const publicDer = publicKey.export({ type: "spki", format: "der" });
  if (publicDer.length !== LINK_PUBKEY_BYTES) throw new Error(`SPICE link key: SPKI is ${publicDer.length} bytes, not ${LINK_PUBKEY_BYTES}`);
  return { privateKey, publicDer };
}

/** A client that has not finished linking by then is dropped. */
export const LINK_TIMEOUT_MS = 10_000;

export interface LinkRequest extends LinkMess {
  /** Both sides have MINI_HEADER: messages use the 6-byte header. */
  miniHeader: boolean;
  /** The decrypted ticket up to its NUL; undefined when it could not be decrypted. */
  ticket: Buffer | undefined;
}

export type LinkVerdict =
  | { result: typeof LINK_ERR.OK }
  | { result: typeof LINK_ERR.PERMISSION_DENIED | typeof LINK_ERR.BAD_CONNECTION_ID | typeof LINK_ERR.CHANNEL_NOT_AVAILABLE; reason: string; vmId?: string };

export type LinkOutcome<V extends LinkVerdict> =
  | { ok: true; request: LinkRequest; verdict: V; /** Bytes the client sent after its ticket. */ leftover: Buffer }
  | { ok: false; reason: string; request?: LinkRequest; verdict?: V };

export interface LinkOptions {
  key: SpiceKey;
  /** Our channel caps for a channel type. */
  channelCaps: (channelType: number) => number[];
  timeoutMs?: number;
}

/** Common caps we send: auth selection, SPICE auth, mini header (spice-server's 0xB). */
export const SERVER_COMMON_CAPS = capsWords([COMMON_CAP.AUTH_SELECTION, COMMON_CAP.AUTH_SPICE, COMMON_CAP.MINI_HEADER]);
const NO_KEY = Buffer.alloc(LINK_PUBKEY_BYTES);

/**
 * Runs the link stage on `stream`. On OK the result has been written and the caller owns the stream;
 * otherwise the refusal (if any) has been written and the stream ended.
 */
export async function linkChannel<V extends LinkVerdict>(stream: Duplex, options: LinkOptions, authorize: (req: LinkRequest) => V): Promise<LinkOutcome<V>> {
  const input = new LinkInput(stream, options.timeoutMs ?? LINK_TIMEOUT_MS);
  let request: LinkRequest | undefined;
  let verdict: V | undefined;
  try {
    const header = parseLinkHeader(await input.read(LINK_HEADER_BYTES));
    if (header.magic !== LINK_MAGIC) return input.refuse(LINK_ERR.INVALID_MAGIC, `bad link magic 0x${header.magic.toString(16)}`);
    if (header.major !== PROTOCOL_MAJOR) return input.refuse(LINK_ERR.VERSION_MISMATCH, `protocol ${header.major}.${header.minor} (we speak ${PROTOCOL_MAJOR})`);
    if (header.size < LINK_MESS_BYTES || header.size > MAX_LINK_BYTES) return input.refuse(LINK_ERR.INVALID_DATA, `link message of ${header.size} bytes (${LINK_MESS_BYTES}..${MAX_LINK_BYTES})`);
    let mess: LinkMess;
    try {
      mess = parseLinkMess(await input.read(header.size));
    } catch (err) {
      if (err instanceof WireError) return input.refuse(LINK_ERR.INVALID_DATA, err.message);
      throw err;
    }
    stream.write(linkReply(LINK_ERR.OK, options.key.publicDer, SERVER_COMMON_CAPS, options.channelCaps(mess.channelType)));
    if (hasCap(mess.commonCaps, COMMON_CAP.AUTH_SELECTION)) {
      const mechanism = (await input.read(4)).readUInt32LE(0);
      if (mechanism !== AUTH_SPICE) return input.fail(LINK_ERR.INVALID_DATA, `auth mechanism ${mechanism} (only SPICE tickets, 1)`);
    }
    const ticket = decryptTicket(options.key, await input.read(TICKET_CIPHER_BYTES));
    request = { ...mess, miniHeader: hasCap(mess.commonCaps, COMMON_CAP.MINI_HEADER), ticket };
    verdict = authorize(request);
    if (verdict.result !== LINK_ERR.OK) {
      const refused = verdict as Exclude<LinkVerdict, { result: 0 }>;
      input.fail(refused.result, refused.reason);
      return { ok: false, reason: refused.reason, request, verdict };
    }
    stream.write(u32Buffer(LINK_ERR.OK));
    return { ok: true, request, verdict, leftover: input.detach() };
  } catch (err) {
    const reason = err instanceof LinkAbort ? err.message : `link failed: ${(err as Error).message}`;
    input.close();
    return { ok: false, reason, request, verdict };
  }
}

/** The ticket bytes before the first NUL; undefined if the ciphertext is not ours. */
function decryptTicket(key: SpiceKey, cipher: Buffer): Buffer | undefined {
  try {
    const plain = privateDecrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, cipher);
    const nul = plain.indexOf(0);
    return nul < 0 ? plain : plain.subarray(0, nul);
  } catch {
    return undefined;
  }
}

class LinkAbort extends Error {}

/** Reads exact pieces of the link stage from a stream, with a deadline and a cap on what it holds. */
class LinkInput {
  private readonly queue = new ByteQueue();
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly stream: Duplex,
    timeoutMs: number,
  ) {
    this.timer = setTimeout(() => this.abort(new LinkAbort(`did not finish linking within ${timeoutMs} ms`)), timeoutMs);
    stream.on("data", this.onData);
    stream.on("end", this.onEnd);
    stream.on("close", this.onEnd);
    stream.on("error", this.onError);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.queue.push(chunk);
    // The client says nothing between its ticket and our result; more than a link message is garbage.
    if (this.queue.length > MAX_LINK_BYTES + LINK_HEADER_BYTES) return this.abort(new LinkAbort(`sent ${this.queue.length} bytes unasked during the link stage`));
    this.wake();
  };
  private readonly onEnd = (): void => this.abort(new LinkAbort("closed the connection during the link stage"));
  private readonly onError = (err: Error): void => this.abort(new LinkAbort(`connection error during the link stage: ${err.message}`));

  read(n: number): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (w && this.queue.length >= w.n) {
      this.waiter = undefined;
      w.resolve(this.queue.take(w.n));
    }
  }

  private abort(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.close();
    this.waiter?.reject(err);
    this.waiter = undefined;
  }

  /** A refusal before the key was sent: a link reply carrying only the error. */
  refuse(code: number, reason: string): { ok: false; reason: string } {
    this.stream.write(linkReply(code, NO_KEY, [], []));
    return this.fail(null, reason);
  }

  /** A refusal after the key: the u32 link result (or nothing), then the end. */
  fail(code: number | null, reason: string): { ok: false; reason: string } {
    if (code !== null) this.stream.write(u32Buffer(code));
    this.failure = new LinkAbort(reason);
    this.release();
    this.stream.end();
    // A peer that never reads must not keep the socket open.
    setTimeout(() => this.stream.destroy(), 1000).unref();
    return { ok: false, reason };
  }

  close(): void {
    this.release();
    this.stream.destroy();
  }

  /** Hands the stream over: what was read past the ticket. */
  detach(): Buffer {
    this.release();
    return this.queue.take(this.queue.length);
  }

  private release(): void {
    clearTimeout(this.timer);
    this.stream.off("data", this.onData);
    this.stream.off("end", this.onEnd);
    this.stream.off("close", this.onEnd);
    this.stream.off("error", this.onError);
    // An error after hand-over is the new owner's; until then, never an unhandled 'error'.
    this.stream.on("error", () => undefined);
  }
}
