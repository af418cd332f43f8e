// The SPICE wire format (spice-protocol's protocol.h and enums.h, spice-common's spice.proto): numbers,
// little-endian readers and writers, the link messages, and the two message headers. The framed reader
// checks every client message against a per-channel bound on its size before it buffers or parses it,
// so a client can make the agent hold at most one small message per channel.

export const LINK_MAGIC = 0x51444552; // "REDQ"
export const PROTOCOL_MAJOR = 2;
export const PROTOCOL_MINOR = 2;
/** SpiceLinkHeader: magic, major, minor, size. */
export const LINK_HEADER_BYTES = 16;
/** SpiceLinkMess without its caps. */
export const LINK_MESS_BYTES = 18;
/** The DER SubjectPublicKeyInfo of an RSA-1024 key. */
export const LINK_PUBKEY_BYTES = 162;
/** SpiceLinkReply without its caps: error, key, two cap counts, caps offset. */
export const LINK_REPLY_BYTES = 4 + LINK_PUBKEY_BYTES + 12;
/** An RSA-1024 ciphertext. */
export const TICKET_CIPHER_BYTES = 128;

/** The link message is 18 bytes plus its caps; spice-server takes at most 1024 caps of each kind. */
export const MAX_LINK_BYTES = 4096;
export const MAX_LINK_CAPS = 1024;

export const CHANNEL = { main: 1, display: 2, inputs: 3, cursor: 4 } as const;
export type ChannelName = keyof typeof CHANNEL;
export const CHANNEL_NAMES = new Map<number, ChannelName>(Object.entries(CHANNEL).map(([name, n]) => [n, name as ChannelName]));

export const LINK_ERR = {
  OK: 0,
  ERROR: 1,
  INVALID_MAGIC: 2,
  INVALID_DATA: 3,
  VERSION_MISMATCH: 4,
  PERMISSION_DENIED: 7,
  BAD_CONNECTION_ID: 8,
  CHANNEL_NOT_AVAILABLE: 9,
} as const;

/** Common caps (bit numbers). */
export const COMMON_CAP = { AUTH_SELECTION: 0, AUTH_SPICE: 1, AUTH_SASL: 2, MINI_HEADER: 3 } as const;
export const MAIN_CAP = { NAME_AND_UUID: 1 } as const;
export const INPUTS_CAP = { KEY_SCANCODE: 0 } as const;
/** The auth mechanism a client selects is the common-cap bit of that mechanism. */
export const AUTH_SPICE = COMMON_CAP.AUTH_SPICE;

/** Server → client messages. */
export const MSG = {
  SET_ACK: 3,
  PING: 4,
  DISCONNECTING: 6,
  MAIN_INIT: 103,
  MAIN_CHANNELS_LIST: 104,
  MAIN_MOUSE_MODE: 105,
  MAIN_MIGRATE_SWITCH_HOST: 111,
  MAIN_NAME: 113,
  MAIN_UUID: 114,
  DISPLAY_MARK: 102,
  DISPLAY_DRAW_COPY: 304,
  DISPLAY_SURFACE_CREATE: 314,
  DISPLAY_SURFACE_DESTROY: 315,
  INPUTS_INIT: 101,
  INPUTS_KEY_MODIFIERS: 102,
  INPUTS_MOUSE_MOTION_ACK: 111,
  CURSOR_INIT: 101,
} as const;

/** Client → server messages. */
export const MSGC = {
  ACK_SYNC: 1,
  ACK: 2,
  PONG: 3,
  DISCONNECTING: 6,
  MAIN_CLIENT_INFO: 101,
  MAIN_ATTACH_CHANNELS: 104,
  MAIN_MOUSE_MODE_REQUEST: 105,
  MAIN_AGENT_START: 106,
  MAIN_AGENT_TOKEN: 108,
  DISPLAY_INIT: 101,
  DISPLAY_STREAM_REPORT: 102,
  DISPLAY_PREFERRED_COMPRESSION: 103,
  DISPLAY_GL_DRAW_DONE: 104,
  DISPLAY_PREFERRED_VIDEO_CODEC_TYPE: 105,
  INPUTS_KEY_DOWN: 101,
  INPUTS_KEY_UP: 102,
  INPUTS_KEY_MODIFIERS: 103,
  INPUTS_KEY_SCANCODE: 104,
  INPUTS_MOUSE_MOTION: 111,
  INPUTS_MOUSE_POSITION: 112,
  INPUTS_MOUSE_PRESS: 113,
  INPUTS_MOUSE_RELEASE: 114,
} as const;

/** Largest body of each client message, per channel (spice.proto's layouts; KEY_SCANCODE: a few keys' bytes). */
const BASE_BOUNDS: Record<number, number> = { [MSGC.ACK_SYNC]: 4, [MSGC.ACK]: 0, [MSGC.PONG]: 12, [MSGC.DISCONNECTING]: 12 };
export const CLIENT_MESSAGE_BOUNDS: Record<number, Record<number, number>> = {
  [CHANNEL.main]: {
    ...BASE_BOUNDS,
    [MSGC.MAIN_CLIENT_INFO]: 8,
    [MSGC.MAIN_ATTACH_CHANNELS]: 0,
    [MSGC.MAIN_MOUSE_MODE_REQUEST]: 2,
    [MSGC.MAIN_AGENT_START]: 4,
    [MSGC.MAIN_AGENT_TOKEN]: 4,
  },
  [CHANNEL.display]: {
    ...BASE_BOUNDS,
    [MSGC.DISPLAY_INIT]: 14,
    [MSGC.DISPLAY_STREAM_REPORT]: 32,
    [MSGC.DISPLAY_PREFERRED_COMPRESSION]: 1,
    [MSGC.DISPLAY_GL_DRAW_DONE]: 0,
    [MSGC.DISPLAY_PREFERRED_VIDEO_CODEC_TYPE]: 256,
  },
  [CHANNEL.inputs]: {
    ...BASE_BOUNDS,
    [MSGC.INPUTS_KEY_DOWN]: 4,
    [MSGC.INPUTS_KEY_UP]: 4,
    [MSGC.INPUTS_KEY_MODIFIERS]: 2,
    [MSGC.INPUTS_KEY_SCANCODE]: 64,
    [MSGC.INPUTS_MOUSE_MOTION]: 10,
    [MSGC.INPUTS_MOUSE_POSITION]: 11,
    [MSGC.INPUTS_MOUSE_PRESS]: 3,
    [MSGC.INPUTS_MOUSE_RELEASE]: 3,
  },
  [CHANNEL.cursor]: { ...BASE_BOUNDS },
};

/** The peer broke the protocol; the channel (only it) is dropped with this reason. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}

/** Reads little-endian fields from one message body; reading past its end is a WireError. */
export class Reader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  private at(n: number): number {
    const p = this.pos;
    if (p + n > this.buf.length) throw new WireError(`${this.what}: ${this.buf.length} bytes is too short`);
    this.pos += n;
    return p;
  }
  u8(): number {
    return this.buf.readUInt8(this.at(1));
  }
  u16(): number {
    return this.buf.readUInt16LE(this.at(2));
  }
  u32(): number {
    return this.buf.readUInt32LE(this.at(4));
  }
  i32(): number {
    return this.buf.readInt32LE(this.at(4));
  }
  u64(): bigint {
    return this.buf.readBigUInt64LE(this.at(8));
  }
  i64(): bigint {
    return this.buf.readBigInt64LE(this.at(8));
  }
  rest(): Buffer {
    return this.buf.subarray(this.at(this.buf.length - this.pos));
  }
}

/** Builds a little-endian body of a known size. */
export class Writer {
  readonly buf: Buffer;
  private pos = 0;
  constructor(size: number) {
    this.buf = Buffer.alloc(size);
  }
  u8(v: number): this {
    this.pos = this.buf.writeUInt8(v, this.pos);
    return this;
  }
  u16(v: number): this {
    this.pos = this.buf.writeUInt16LE(v, this.pos);
    return this;
  }
  i16(v: number): this {
    this.pos = this.buf.writeInt16LE(v, this.pos);
    return this;
  }
  u32(v: number): this {
    this.pos = this.buf.writeUInt32LE(v >>> 0, this.pos);
    return this;
  }
  i32(v: number): this {
    this.pos = this.buf.writeInt32LE(v, this.pos);
    return this;
  }
  u64(v: bigint): this {
    this.pos = this.buf.writeBigUInt64LE(v, this.pos);
    return this;
  }
  bytes(b: Uint8Array): this {
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }
  /** The body; throws if fewer bytes were written than allocated (a layout mistake). */
  done(): Buffer {
    if (this.pos !== this.buf.length) throw new Error(`SPICE body: wrote ${this.pos} of ${this.buf.length} bytes`);
    return this.buf;
  }
}

/** Caps as a list of u32 words, bit n of word n>>5. */
export function capsWords(bits: number[]): number[] {
  const words: number[] = [];
  for (const b of bits) {
    while (words.length <= b >> 5) words.push(0);
    words[b >> 5] = (words[b >> 5] | (1 << (b & 31))) >>> 0;
  }
  return words;
}

export function hasCap(words: readonly number[], bit: number): boolean {
  return ((words[bit >> 5] ?? 0) & (1 << (bit & 31))) !== 0;
}

export interface LinkHeader {
  magic: number;
  major: number;
  minor: number;
  size: number;
}

export function parseLinkHeader(buf: Buffer): LinkHeader {
  const r = new Reader(buf, "link header");
  return { magic: r.u32(), major: r.u32(), minor: r.u32(), size: r.u32() };
}

export function linkHeader(size: number): Buffer {
  return new Writer(LINK_HEADER_BYTES).u32(LINK_MAGIC).u32(PROTOCOL_MAJOR).u32(PROTOCOL_MINOR).u32(size).done();
}

export interface LinkMess {
  connectionId: number;
  channelType: number;
  channelId: number;
  commonCaps: number[];
  channelCaps: number[];
}

/** SpiceLinkMess: its caps must lie inside the message, after the fixed part. */
export function parseLinkMess(buf: Buffer): LinkMess {
  const r = new Reader(buf, "link message");
  const connectionId = r.u32();
  const channelType = r.u8();
  const channelId = r.u8();
  const nCommon = r.u32();
  const nChannel = r.u32();
  const capsOffset = r.u32();
  if (nCommon > MAX_LINK_CAPS || nChannel > MAX_LINK_CAPS) throw new WireError(`link message: ${nCommon} common and ${nChannel} channel caps (at most ${MAX_LINK_CAPS} each)`);
  const capsEnd = capsOffset + 4 * (nCommon + nChannel);
  if (capsOffset < LINK_MESS_BYTES || capsEnd > buf.length) throw new WireError(`link message: caps at ${capsOffset}..${capsEnd} outside its ${buf.length} bytes`);
  const word = (i: number): number => buf.readUInt32LE(capsOffset + 4 * i);
  return {
    connectionId,
    channelType,
    channelId,
    commonCaps: Array.from({ length: nCommon }, (_, i) => word(i)),
    channelCaps: Array.from({ length: nChannel }, (_, i) => word(nCommon + i)),
  };
}

export function linkMess(m: LinkMess): Buffer {
  const w = new Writer(LINK_MESS_BYTES + 4 * (m.commonCaps.length + m.channelCaps.length));
  w.u32(m.connectionId).u8(m.channelType).u8(m.channelId).u32(m.commonCaps.length).u32(m.channelCaps.length).u32(LINK_MESS_BYTES);
  for (const c of [...m.commonCaps, ...m.channelCaps]) w.u32(c);
  return w.done();
}

/** The server's link header and SpiceLinkReply: the key and our caps (error OK), or only an error. */
export function linkReply(error: number, publicKeyDer: Buffer, commonCaps: number[], channelCaps: number[]): Buffer {
  if (publicKeyDer.length !== LINK_PUBKEY_BYTES) throw new Error(`link reply: public key is ${publicKeyDer.length} bytes, not ${LINK_PUBKEY_BYTES}`);
  const w = new Writer(LINK_REPLY_BYTES + 4 * (commonCaps.length + channelCaps.length));
  w.u32(error).bytes(publicKeyDer).u32(commonCaps.length).u32(channelCaps.length).u32(LINK_REPLY_BYTES);
  for (const c of [...commonCaps, ...channelCaps]) w.u32(c);
  const body = w.done();
  return Buffer.concat([linkHeader(body.length), body]);
}

export interface LinkReplyData {
  error: number;
  publicKeyDer: Buffer;
  commonCaps: number[];
  channelCaps: number[];
}

export function parseLinkReply(body: Buffer): LinkReplyData {
  const error = new Reader(body, "link reply").u32();
  if (body.length < LINK_REPLY_BYTES) return { error, publicKeyDer: Buffer.alloc(0), commonCaps: [], channelCaps: [] };
  const publicKeyDer = body.subarray(4, 4 + LINK_PUBKEY_BYTES);
  const f = new Reader(body.subarray(4 + LINK_PUBKEY_BYTES), "link reply caps");
  const nCommon = f.u32();
  const nChannel = f.u32();
  const offset = f.u32();
  const word = (i: number): number => body.readUInt32LE(offset + 4 * i);
  return { error, publicKeyDer, commonCaps: Array.from({ length: nCommon }, (_, i) => word(i)), channelCaps: Array.from({ length: nChannel }, (_, i) => word(nCommon + i)) };
}

export function u32Buffer(v: number): Buffer {
  return new Writer(4).u32(v).done();
}

/** Mini header {u16 type, u32 size}, used when both sides have MINI_HEADER. */
export const MINI_HEADER_BYTES = 6;
/** Full header {u64 serial, u16 type, u32 size, u32 sub_list}. */
export const FULL_HEADER_BYTES = 18;

export function messageHeader(mini: boolean, serial: bigint, type: number, size: number): Buffer {
  if (mini) return new Writer(MINI_HEADER_BYTES).u16(type).u32(size).done();
  return new Writer(FULL_HEADER_BYTES).u64(serial).u16(type).u32(size).u32(0).done();
}

/** Buffered input bytes, taken in pieces without copying more than a piece. */
export class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  /** The first n bytes (n ≤ length), left in place. */
  peek(n: number): Buffer {
    if (n > this.length) throw new Error(`ByteQueue: ${n} bytes asked, ${this.length} held`);
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0].subarray(0, n);
  }

  /** Drops the first n bytes (n ≤ length) without copying them. */
  skip(n: number): void {
    if (n > this.length) throw new Error(`ByteQueue: ${n} bytes to skip, ${this.length} held`);
    this.length -= n;
    while (n > 0) {
      const c = this.chunks[0];
      if (c.length <= n) {
        this.chunks.shift();
        n -= c.length;
      } else {
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
  }

  /** The first n bytes (n ≤ length), removed. */
  take(n: number): Buffer {
    if (n > this.length) throw new Error(`ByteQueue: ${n} bytes asked, ${this.length} held`);
    this.length -= n;
    const first = this.chunks[0];
    if (first && first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}

export interface ClientMessage {
  type: number;
  body: Buffer;
}

/**
 * Splits a channel's byte stream into messages. Each header is checked against the channel's bounds as
 * soon as it is complete: an unknown type, a body over its bound or a sub-message list is a WireError
 * before any of the body is kept.
 */
export class MessageReader {
  private readonly queue = new ByteQueue();
  private header: { type: number; size: number } | undefined;

  constructor(
    private readonly channelType: number,
    private readonly mini: boolean,
  ) {
    if (!CLIENT_MESSAGE_BOUNDS[channelType]) throw new Error(`no message bounds for channel type ${channelType}`);
  }

  /** Adds bytes; returns the messages they complete. Throws WireError on a bad header. */
  push(bytes: Buffer): ClientMessage[] {
    this.queue.push(bytes);
    const out: ClientMessage[] = [];
    for (;;) {
      if (!this.header) {
        const hdrBytes = this.mini ? MINI_HEADER_BYTES : FULL_HEADER_BYTES;
        if (this.queue.length < hdrBytes) break;
        const h = this.queue.take(hdrBytes);
        const header = this.mini ? { type: h.readUInt16LE(0), size: h.readUInt32LE(2), subList: 0 } : { type: h.readUInt16LE(8), size: h.readUInt32LE(10), subList: h.readUInt32LE(14) };
        checkBound(this.channelType, header.type, header.size);
        if (header.subList !== 0) throw new WireError(`message ${header.type} carries a sub-message list, which clients never send`);
        this.header = header;
      }
      if (this.queue.length < this.header.size) break;
      out.push({ type: this.header.type, body: this.queue.take(this.header.size) });
      this.header = undefined;
    }
    return out;
  }

  /** Bytes held that are not yet a whole message. */
  get buffered(): number {
    return this.queue.length;
  }
}

/** Throws WireError unless `type` is a client message of this channel and `size` within its bound. */
export function checkBound(channelType: number, type: number, size: number): void {
  const bound = CLIENT_MESSAGE_BOUNDS[channelType]?.[type];
  const channel = CHANNEL_NAMES.get(channelType) ?? `type ${channelType}`;
  if (bound === undefined) throw new WireError(`unknown message type ${type} on the ${channel} channel`);
  if (size > bound) throw new WireError(`message type ${type} on the ${channel} channel is ${size} bytes, over its bound of ${bound}`);
}
