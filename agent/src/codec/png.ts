// Minimal PNG reader and writer over node's zlib: enough for benchmark inputs (8-bit RGB/RGBA,
// non-interlaced) and for screenshots of the B,G,R,X framebuffer. Pixels on our side are always
// 4 bytes per pixel in B,G,R,X order, top row first, packed rows.
import { deflateSync, inflateSync } from "node:zlib";
import { CodecError } from "./image.js";

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
const COLOR_RGB = 2;
const COLOR_RGBA = 6;

export interface PngImage {
  width: number;
  height: number;
  /** The source had an alpha channel; then byte 3 of each pixel is its alpha, otherwise 0. */
  hasAlpha: boolean;
  /** width × height × 4 bytes: B,G,R,X (X = alpha or 0), top row first. */
  bgrx: Uint8Array;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (ISO 3309) as PNG chunks need; own table because zlib.crc32 is newer than Node 20.0. */
function crc32(parts: Uint8Array[]): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i++) c = crcTable[(c ^ p[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  const name = new TextEncoder().encode(type);
  out.set(name, 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32([name, data]));
  return out;
}

/**
 * Encodes a packed B,G,R,X image as an 8-bit RGB PNG (X is dropped). Rows use the Sub filter, which
 * costs little and helps photo-like content; zlib level 6 unless told otherwise.
 */
export function encodePng(width: number, height: number, bgrx: Uint8Array, options: { level?: number } = {}): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new CodecError(`PNG size ${width}x${height} is not valid`);
  }
  if (bgrx.length < width * height * 4) throw new CodecError(`${bgrx.length} bytes cannot hold a ${width}x${height} BGRX image`);
  const rowBytes = width * 3;
  const raw = new Uint8Array((rowBytes + 1) * height);
  for (let y = 0; y < height; y++) {
    const o = y * (rowBytes + 1);
    raw[o] = 1; // Sub: each byte minus the same channel of the pixel to its left
    let s = y * width * 4;
    let pr = 0, pg = 0, pb = 0;
    for (let x = 0, d = o + 1; x < width; x++, s += 4, d += 3) {
      const r = bgrx[s + 2], g = bgrx[s + 1], b = bgrx[s];
      raw[d] = (r - pr) & 0xff;
      raw[d + 1] = (g - pg) & 0xff;
      raw[d + 2] = (b - pb) & 0xff;
      pr = r;
      pg = g;
      pb = b;
    }
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, COLOR_RGB, 0, 0, 0], 8);
  const parts = [SIGNATURE, chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw, { level: options.level ?? 6 })), chunk("IEND", new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Decodes an 8-bit RGB or RGBA, non-interlaced PNG; throws CodecError for anything else. */
export function decodePng(data: Uint8Array): PngImage {
  if (data.length < 8 || SIGNATURE.some((b, i) => data[i] !== b)) throw new CodecError("not a PNG file (bad signature)");
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let width = 0, height = 0, color = -1;
  const idat: Uint8Array[] = [];
  for (let at = 8; ; ) {
    if (at + 12 > data.length) throw new CodecError("PNG is truncated (no IEND chunk)");
    const length = dv.getUint32(at);
    const type = String.fromCharCode(data[at + 4], data[at + 5], data[at + 6], data[at + 7]);
    const body = data.subarray(at + 8, at + 8 + length);
    if (at + 12 + length > data.length) throw new CodecError(`PNG is truncated (in chunk ${type})`);
    if (dv.getUint32(at + 8 + length) !== crc32([data.subarray(at + 4, at + 8), body])) throw new CodecError(`PNG chunk ${type} has a bad CRC`);
    at += 12 + length;
    if (type === "IHDR") {
      if (length !== 13) throw new CodecError("PNG IHDR has the wrong length");
      width = dv.getUint32(body.byteOffset - data.byteOffset);
      height = dv.getUint32(body.byteOffset - data.byteOffset + 4);
      const [depth, ct, compression, filter, interlace] = body.subarray(8, 13);
      if (depth !== 8 || (ct !== COLOR_RGB && ct !== COLOR_RGBA)) {
        throw new CodecError(`PNG with bit depth ${depth} and colour type ${ct} is not supported (only 8-bit RGB or RGBA)`);
      }
      if (compression !== 0 || filter !== 0) throw new CodecError("PNG uses an unknown compression or filter method");
      if (interlace !== 0) throw new CodecError("interlaced PNG is not supported");
      if (width < 1 || height < 1 || width * height > 1 << 28) throw new CodecError(`PNG size ${width}x${height} is not supported`);
      color = ct;
    } else if (type === "IDAT") {
      idat.push(body);
    } else if (type === "IEND") {
      break;
    }
  }
  if (color < 0) throw new CodecError("PNG has no IHDR chunk");
  const channels = color === COLOR_RGBA ? 4 : 3;
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat));
  } catch (e) {
    throw new CodecError(`PNG image data does not inflate: ${(e as Error).message}`);
  }
  const rowBytes = width * channels;
  if (raw.length < (rowBytes + 1) * height) throw new CodecError("PNG image data is shorter than the image");
  const bgrx = new Uint8Array(width * height * 4);
  let prev = new Uint8Array(rowBytes);
  let row = new Uint8Array(rowBytes);
  for (let y = 0; y < height; y++) {
    const o = y * (rowBytes + 1);
    unfilter(raw[o], raw.subarray(o + 1, o + 1 + rowBytes), prev, row, channels);
    for (let x = 0, s = 0, d = y * width * 4; x < width; x++, s += channels, d += 4) {
      bgrx[d] = row[s + 2];
      bgrx[d + 1] = row[s + 1];
      bgrx[d + 2] = row[s];
      bgrx[d + 3] = channels === 4 ? row[s + 3] : 0;
    }
    [prev, row] = [row, prev];
  }
  return { width, height, hasAlpha: channels === 4, bgrx };
}

/** Reverses one row's filter into `out`, given the previous (already unfiltered) row. */
function unfilter(kind: number, line: Uint8Array, prev: Uint8Array, out: Uint8Array, bpp: number): void {
  const n = line.length;
  switch (kind) {
    case 0:
      out.set(line);
      return;
    case 1:
      for (let i = 0; i < n; i++) out[i] = (line[i] + (i >= bpp ? out[i - bpp] : 0)) & 0xff;
      return;
    case 2:
      for (let i = 0; i < n; i++) out[i] = (line[i] + prev[i]) & 0xff;
      return;
    case 3:
      for (let i = 0; i < n; i++) out[i] = (line[i] + (((i >= bpp ? out[i - bpp] : 0) + prev[i]) >> 1)) & 0xff;
      return;
    case 4:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? out[i - bpp] : 0;
        const b = prev[i];
        const c = i >= bpp ? prev[i - bpp] : 0;
        const p = a + b - c;
        const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        out[i] = (line[i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff;
      }
      return;
    default:
      throw new CodecError(`PNG row uses unknown filter type ${kind}`);
  }
}
