// The SPICE wire as `qumra bench spice` reads it, passively, from the middle of a connection: the client's
// link message (which channel, which caps), then the server's side of the stream (link reply, link result,
// then messages) cut into messages, with DRAW_COPY's box and image type and SURFACE_CREATE's size decoded.
// Numbers and link layouts are the SPICE server's own (agent/src/spice/wire.ts); this file only reads.

import {
  ByteQueue, CHANNEL, COMMON_CAP, FULL_HEADER_BYTES, LINK_HEADER_BYTES, LINK_MAGIC, MINI_HEADER_BYTES, MSG, hasCap, parseLinkMess, parseLinkReply,
} from "../agent/src/spice/wire.js";

export const CHANNEL_MAIN = CHANNEL.main;
export const CHANNEL_DISPLAY = CHANNEL.display;
export const MSG_DISPLAY_MARK = MSG.DISPLAY_MARK;
export const MSG_DISPLAY_DRAW_COPY = MSG.DISPLAY_DRAW_COPY;
export const MSG_DISPLAY_SURFACE_CREATE = MSG.DISPLAY_SURFACE_CREATE;
/** DRAW_COPY bodies are kept up to here: the fixed part, clip rects and the image descriptor fit. */
const KEPT_BODY_BYTES = 4096;

export const IMAGE_TYPES: Record<number, string> = {
  0: "bitmap", 1: "quic", 100: "lz_plt", 101: "lz_rgb", 102: "glz_rgb", 103: "from_cache", 104: "surface",
  105: "jpeg", 106: "from_cache_lossless", 107: "zlib_glz_rgb", 108: "jpeg_alpha", 109: "lz4",
};

export interface LinkMess {
  channelType: number;
  channelId: number;
  miniHeader: boolean;
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface DrawCopy {
  surfaceId: number;
  box: Box;
  /** IMAGE_TYPES key, or -1 when the descriptor lies beyond the kept bytes. */
  imageType: number;
}

export interface SpiceMessage {
  type: number;
  /** Body bytes (the header not counted). */
  size: number;
  /** Header + body bytes on the wire. */
  wireBytes: number;
  /** When its last byte went through (the caller's clock). */
  at: number;
  drawCopy?: DrawCopy;
  surface?: { id: number; width: number; height: number };
}

function checkMagic(header: Buffer, who: string): number {
  if (header.readUInt32LE(0) !== LINK_MAGIC) throw new Error(`${who}: not a SPICE link (magic 0x${header.readUInt32LE(0).toString(16)})`);
  return header.readUInt32LE(12);
}

/** The client's first bytes: SpiceLinkHeader + SpiceLinkMess. Later client bytes are only counted. */
export class ClientLinkParser {
  private readonly queue = new ByteQueue();
  link?: LinkMess & { commonCaps: number[] };

  /** Feeds client→server bytes; returns the link message once it is complete. */
  feed(chunk: Buffer): (LinkMess & { commonCaps: number[] }) | undefined {
    if (this.link) return this.link;
    this.queue.push(chunk);
    if (this.queue.length < LINK_HEADER_BYTES) return undefined;
    const size = checkMagic(this.queue.peek(LINK_HEADER_BYTES), "client");
    if (this.queue.length < LINK_HEADER_BYTES + size) return undefined;
    const body = this.queue.take(LINK_HEADER_BYTES + size).subarray(LINK_HEADER_BYTES);
    const { channelType, channelId, commonCaps } = parseLinkMess(body);
    this.link = { channelType, channelId, miniHeader: hasCap(commonCaps, COMMON_CAP.MINI_HEADER), commonCaps };
    return this.link;
  }
}

type ServerStage = "link-reply" | "link-result" | "messages";

/**
 * The server's side of one channel. `clientMiniHeader` says whether the client offered the mini header
 * (the client's link message always comes first: the server answers it).
 */
export class ServerStreamParser {
  private readonly queue = new ByteQueue();
  private stage: ServerStage = "link-reply";
  private miniHeader = false;
  private header?: { type: number; size: number; headerBytes: number };
  /** The link result: 0 is SPICE_LINK_ERR_OK. */
  linkResult?: number;

  constructor(private readonly clientMiniHeader: () => boolean) {}

  /** Feeds server→client bytes that arrived at `at`; returns the messages they completed. */
  feed(chunk: Buffer, at: number): SpiceMessage[] {
    this.queue.push(chunk);
    const out: SpiceMessage[] = [];
    for (;;) {
      if (this.stage === "link-reply") {
        if (this.queue.length < LINK_HEADER_BYTES) break;
        const size = checkMagic(this.queue.peek(LINK_HEADER_BYTES), "server");
        if (this.queue.length < LINK_HEADER_BYTES + size) break;
        const body = this.queue.take(LINK_HEADER_BYTES + size).subarray(LINK_HEADER_BYTES);
        const { error, commonCaps } = parseLinkReply(body);
        if (error !== 0) throw new Error(`server refused the link: error ${error}`);
        this.miniHeader = this.clientMiniHeader() && hasCap(commonCaps, COMMON_CAP.MINI_HEADER);
        this.stage = "link-result";
      } else if (this.stage === "link-result") {
        if (this.queue.length < 4) break;
        this.linkResult = this.queue.take(4).readUInt32LE(0);
        this.stage = "messages";
      } else if (!this.header) {
        const headerBytes = this.miniHeader ? MINI_HEADER_BYTES : FULL_HEADER_BYTES;
        if (this.queue.length < headerBytes) break;
        const h = this.queue.take(headerBytes);
        this.header = this.miniHeader
          ? { type: h.readUInt16LE(0), size: h.readUInt32LE(2), headerBytes }
          : { type: h.readUInt16LE(8), size: h.readUInt32LE(10), headerBytes };
      } else {
        const { type, size, headerBytes } = this.header;
        if (this.queue.length < size) break;
        const keep = type === MSG_DISPLAY_DRAW_COPY || type === MSG_DISPLAY_SURFACE_CREATE ? Math.min(size, KEPT_BODY_BYTES) : 0;
        const kept = this.queue.take(keep);
        this.queue.skip(size - keep);
        const message: SpiceMessage = { type, size, wireBytes: headerBytes + size, at };
        if (type === MSG_DISPLAY_DRAW_COPY) message.drawCopy = parseDrawCopy(kept);
        if (type === MSG_DISPLAY_SURFACE_CREATE) message.surface = { id: kept.readUInt32LE(0), width: kept.readUInt32LE(4), height: kept.readUInt32LE(8) };
        out.push(message);
        this.header = undefined;
      }
    }
    return out;
  }
}

/**
 * DRAW_COPY: SpiceMsgDisplayBase { surface_id u32, box Rect, clip { type u8, [num u32, Rect…] } } then
 * SpiceCopy { src_bitmap offset u32 (from the body's start), … }; the image starts with a descriptor
 * { id u64, type u8, flags u8, width u32, height u32 }. Rect = top, left, bottom, right (i32).
 */
export function parseDrawCopy(body: Buffer): DrawCopy {
  const surfaceId = body.readUInt32LE(0);
  const top = body.readInt32LE(4), left = body.readInt32LE(8), bottom = body.readInt32LE(12), right = body.readInt32LE(16);
  let at = 20;
  const clipType = body[at++];
  if (clipType === 1) at += 4 + body.readUInt32LE(at) * 16; // SPICE_CLIP_TYPE_RECTS
  const imageAt = at + 4 <= body.length ? body.readUInt32LE(at) : 0;
  const imageType = imageAt && imageAt + 9 <= body.length ? body[imageAt + 8] : -1;
  return { surfaceId, box: { left, top, width: right - left, height: bottom - top }, imageType };
}

export function imageTypeName(type: number): string {
  return IMAGE_TYPES[type] ?? (type < 0 ? "?" : `type ${type}`);
}

export function intersects(a: Box, b: Box): boolean {
  return a.left < b.left + b.width && b.left < a.left + a.width && a.top < b.top + b.height && b.top < a.top + a.height;
}
