// QUIC (SPICE image type 1): typed encode/decode over the WASM codec module (wasm/assembly/quic*.ts).
//
// The encoder reads pixels that are already in the instance's linear memory (a framebuffer read lands
// in the input region) and returns a view of the encoded words in the output region. Both views stay
// valid until the next call on the same instance.
import { BYTES_PER_PIXEL, CodecError, checkImage, checkTarget, type ImageDesc, type ImageType, type PixelTarget } from "./image.js";
import type { CodecInstance } from "./instance.js";
import type { CodecExports } from "./wasm-module.js";
import { CODEC_ERRORS, codecError } from "./errors.js";

/** The module's QUIC exports (see wasm/assembly/quic.ts and quic_decode.ts). */
export interface QuicExports extends CodecExports {
  quicEncode(type: number, width: number, height: number, stride: number, topDown: number,
             inPtr: number, outPtr: number, outCapacity: number): number;
  quicMaxEncodedSize(type: number, width: number, height: number): number;
  quicDecodeHeader(inPtr: number, inLen: number, infoPtr: number): number;
  quicDecode(inPtr: number, inLen: number, outPtr: number, outCapacity: number, outStride: number): number;
}

/** QUIC image type numbers (spice-common quic.h). */
const QUIC_TYPE: Partial<Record<ImageType, number>> = { gray: 1, rgb16: 2, rgb24: 3, rgb32: 4, rgba: 5 };
const IMAGE_TYPE: Record<number, ImageType> = { 1: "gray", 2: "rgb16", 3: "rgb24", 4: "rgb32", 5: "rgba" };

/** Largest image decodeQuic accepts by default (pixels), so a corrupt header cannot ask for gigabytes. */
export const QUIC_DEFAULT_MAX_PIXELS = 8192 * 8192;

function quic(codec: CodecInstance): QuicExports {
  return codec.exports as QuicExports;
}

function fail(what: string, code: number): never {
  throw codecError(what, code);
}

function quicType(desc: ImageDesc): number {
  const type = QUIC_TYPE[desc.type];
  if (type === undefined) throw new CodecError(`QUIC cannot encode '${desc.type}' images (rgb32, rgba, rgb24, rgb16 or gray)`);
  return type;
}

/** Allocation in the instance that turns an out-of-memory trap into a CodecError. */
function region<T>(what: string, bytes: number, get: () => T): T {
  try {
    return get();
  } catch (e) {
    throw new CodecError(`cannot allocate ${bytes} bytes for ${what}: ${(e as Error).message}`);
  }
}

/**
 * Encodes the image whose pixels are already in the instance's memory: in the input region (written by
 * the caller through `codec.input(size)`), or at `inputOffset`. Returns a view of the QUIC stream (a
 * multiple of 4 bytes) in the output region, valid until the next call on `codec`.
 */
export function encodeQuic(codec: CodecInstance, desc: ImageDesc, inputOffset?: number): Uint8Array {
  checkImage(desc);
  const type = quicType(desc);
  const { width, height, stride } = desc;
  const needed = stride * (height - 1) + width * BYTES_PER_PIXEL[desc.type];
  const input = inputOffset ?? codec.input(needed).offset;
  const ex = quic(codec);
  if (input + needed > ex.memory.buffer.byteLength) {
    throw new CodecError(`input at ${input} (+${needed} bytes) lies outside the codec's memory`);
  }
  // Try with room for the raw size plus a margin; the encoder checks space per row against a
  // worst case, so on "too small" retry once with the size that always suffices.
  const worst = ex.quicMaxEncodedSize(type, width, height);
  let capacity = Math.min(worst, Math.ceil(needed * 1.5) + 65536);
  for (;;) {
    const out = region("the QUIC output", capacity, () => codec.output(capacity));
    const n = ex.quicEncode(type, width, height, stride, desc.topDown === false ? 0 : 1, input, out.offset, out.capacity);
    if (n >= 0) return codec.view(out.offset, n);
    if (n === CODEC_ERRORS.OUTPUT.code && capacity < worst) {
      capacity = worst;
      continue;
    }
    fail(`QUIC encode of a ${width}x${height} ${desc.type} image`, n);
  }
}

/** Encodes pixels held in a JS buffer: copies them into the instance's input region, then encodeQuic. */
export function encodeQuicPixels(codec: CodecInstance, desc: ImageDesc, pixels: Uint8Array): Uint8Array {
  checkImage(desc, pixels.length);
  quicType(desc);
  const offset = region("the QUIC input", pixels.length, () => codec.load(pixels));
  return encodeQuic(codec, desc, offset);
}

/** Reads a QUIC stream's header: its image type and size. Throws CodecError if it is not one. */
export function readQuicHeader(data: Uint8Array): { type: ImageType; width: number; height: number } {
  if (data.length < 20) fail("QUIC header", CODEC_ERRORS.TRUNCATED.code);
  const dv = new DataView(data.buffer, data.byteOffset, 20);
  if (dv.getUint32(0, true) !== 0x43495551) fail("QUIC header", CODEC_ERRORS.MAGIC.code);
  if (dv.getUint32(4, true) !== 0) fail("QUIC header", CODEC_ERRORS.VERSION.code);
  const type = IMAGE_TYPE[dv.getUint32(8, true)];
  if (type === undefined) fail("QUIC header", CODEC_ERRORS.TYPE.code);
  const width = dv.getInt32(12, true);
  const height = dv.getInt32(16, true);
  if (width <= 0 || height <= 0) fail("QUIC header", CODEC_ERRORS.SIZE.code);
  return { type, width, height };
}

export interface DecodeQuicOptions {
  /** Refuse images with more pixels than this (default QUIC_DEFAULT_MAX_PIXELS). */
  maxPixels?: number;
}

/**
 * Decodes a QUIC stream. `pixels` are tightly packed rows, top row first, in the stream's own layout
 * (rgb32 padding bytes are 0); it is a view of the instance's output region, valid until the next call.
 * Throws CodecError for anything that is not a well-formed stream.
 */
export function decodeQuic(codec: CodecInstance, data: Uint8Array, options: DecodeQuicOptions = {}): { desc: ImageDesc; pixels: Uint8Array } {
  const { type, width, height } = readQuicHeader(data);
  const maxPixels = options.maxPixels ?? QUIC_DEFAULT_MAX_PIXELS;
  if (width > 65535 || height > 65535 || width * height > maxPixels) {
    throw new CodecError(`QUIC image ${width}x${height} is larger than allowed (${maxPixels} pixels, 65535 per side)`);
  }
  const stride = width * BYTES_PER_PIXEL[type];
  const size = stride * height;
  const ex = quic(codec);
  const input = region("the QUIC stream", data.length, () => codec.load(data));
  const out = region("the decoded image", size, () => codec.output(size));
  const r = ex.quicDecode(input, data.length, out.offset, out.capacity, stride);
  if (r < 0) fail(`QUIC decode of a ${width}x${height} ${type} image`, r);
  return { desc: { type, width, height, stride, topDown: true }, pixels: codec.view(out.offset, size) };
}

/**
 * Decodes a QUIC stream of 32-bit pixels (rgb32 or rgba) straight into `target`, a rect of a larger
 * picture in the instance's memory, rows `target.stride` bytes apart (rgb32 pad bytes written as 0).
 * A stream of another type or size is refused before anything is written; a corrupt one may leave
 * the rect partly written, never anything outside it. Returns the image as written.
 */
export function decodeQuicInto(codec: CodecInstance, data: Uint8Array, target: PixelTarget): ImageDesc {
  const { type, width, height } = readQuicHeader(data);
  if (type !== "rgb32" && type !== "rgba") throw new CodecError(`QUIC decode into 32-bit pixels: the stream holds ${type} pixels`);
  const ex = quic(codec);
  const span = checkTarget(target, ex.memory.buffer.byteLength, "QUIC image", width, height);
  const input = region("the QUIC stream", data.length, () => codec.load(data));
  const r = ex.quicDecode(input, data.length, target.offset, span, target.stride);
  if (r < 0) fail(`QUIC decode of a ${width}x${height} ${type} image`, r);
  return { type, width, height, stride: target.stride, topDown: true };
}
