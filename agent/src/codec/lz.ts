// SPICE LZ (spice-common lz.c format) over the WASM codec module: encode an image that lives in the
// instance's input region, decode a stream back to pixels.
import { CodecInstance } from "./instance.js";
import type { CodecExports } from "./wasm-module.js";
import { BYTES_PER_PIXEL, CodecError, checkImage, checkTarget, type ImageDesc, type ImageType, type PixelTarget } from "./image.js";
import { codecError } from "./errors.js";

/** The LZ/GLZ exports of the codec module (wasm/assembly/lz*.ts, glz*.ts). */
export interface LzExports extends CodecExports {
  lzEncodeBound(type: number, width: number, height: number, stride: number): number;
  lzEncode(type: number, width: number, height: number, stride: number, topDown: number,
    inPtr: number, outPtr: number, outCapacity: number): number;
  lzDecodeHeader(inPtr: number, inLen: number, infoPtr: number): number;
  lzDecode(inPtr: number, inLen: number, outPtr: number, outCapacity: number, outStride: number, topFirst: number): number;
}

/** LzImageType codes of lz_common.h. */
export const LZ_TYPE = {
  plt1le: 1, plt1be: 2, plt4le: 3, plt4be: 4, plt8: 5, rgb16: 6, rgb24: 7, rgb32: 8, rgba: 9, xxxa: 10, a8: 11,
} as const;

const TYPE_CODE: Partial<Record<ImageType, number>> = {
  rgb32: LZ_TYPE.rgb32, rgba: LZ_TYPE.rgba, rgb24: LZ_TYPE.rgb24, rgb16: LZ_TYPE.rgb16, plt8: LZ_TYPE.plt8,
};
const TYPE_NAME: Record<number, ImageType> = { 8: "rgb32", 9: "rgba", 7: "rgb24", 6: "rgb16", 5: "plt8" };

/** The LZ type code for an image type, or a CodecError if LZ cannot carry it. */
export function lzTypeCode(type: ImageType, codec = "LZ"): number {
  const code = TYPE_CODE[type];
  if (code === undefined) throw new CodecError(`${codec} cannot encode ${type} images`);
  return code;
}

/** Bytes of input an image description covers (the last row need not be padded to the stride). */
export function imageBytes(desc: ImageDesc): number {
  return desc.stride * (desc.height - 1) + desc.width * BYTES_PER_PIXEL[desc.type];
}

/**
 * Encodes the image at `inputOffset` (default: the instance's input region, where the caller wrote
 * the pixels) as an LZ stream. Returns a view of the stream in WASM memory, valid until the next call
 * on this instance.
 */
export function encodeLz(codec: CodecInstance, desc: ImageDesc, inputOffset?: number): Uint8Array {
  checkImage(desc);
  const type = lzTypeCode(desc.type);
  const x = codec.exports as LzExports;
  const size = imageBytes(desc);
  const offset = inputOffset ?? codec.input(size).offset;
  if (offset < 0 || offset + size > x.memory.buffer.byteLength) {
    throw new CodecError(`input at ${offset} (${size} bytes) is outside the codec memory`);
  }
  const bound = x.lzEncodeBound(type, desc.width, desc.height, desc.stride);
  if (bound < 0) throw codecError("LZ encode", bound);
  const out = codec.output(bound);
  const n = x.lzEncode(type, desc.width, desc.height, desc.stride, desc.topDown === false ? 0 : 1,
    offset, out.offset, out.capacity);
  if (n < 0) throw codecError("LZ encode", n);
  return codec.view(out.offset, n);
}

/** Header of an LZ stream. */
export interface LzHeader {
  /** LzImageType code (see LZ_TYPE). */
  lzType: number;
  width: number;
  height: number;
  /** Row size in the stream (packed). */
  stride: number;
  topDown: boolean;
  /** Bytes per decoded row. */
  rowBytes: number;
}

/** Reads the header of an LZ stream (throws CodecError if it is not a valid one). */
export function readLzHeader(codec: CodecInstance, data: Uint8Array): LzHeader {
  const x = codec.exports as LzExports;
  const inOff = codec.load(data);
  const info = codec.output(32).offset;
  const err = x.lzDecodeHeader(inOff, data.length, info);
  if (err < 0) throw codecError("LZ decode", err);
  const v = new Int32Array(x.memory.buffer, info, 6);
  return { lzType: v[0], width: v[1], height: v[2], stride: v[3], topDown: v[4] !== 0, rowBytes: v[5] };
}

/**
 * Decodes an LZ stream of one of the image types (rgb32, rgba, rgb24, rgb16, plt8). Pixels keep the
 * stream's layout with packed rows (rgb32: pad byte 0; plt8: indices, no palette). The pixels are a
 * view of WASM memory, valid until the next call on this instance.
 */
export function decodeLz(codec: CodecInstance, data: Uint8Array): { desc: ImageDesc; pixels: Uint8Array } {
  const x = codec.exports as LzExports;
  const h = readLzHeader(codec, data);
  const type = TYPE_NAME[h.lzType];
  if (type === undefined) throw new CodecError(`LZ decode: image type ${h.lzType} is not supported here`);
  const size = h.rowBytes * h.height;
  // input is already loaded by readLzHeader; the output region follows it
  const inOff = codec.input(data.length).offset;
  const out = codec.output(size);
  const n = x.lzDecode(inOff, data.length, out.offset, out.capacity, 0, 0);
  if (n < 0) throw codecError("LZ decode", n);
  const desc: ImageDesc = { type, width: h.width, height: h.height, stride: h.rowBytes, topDown: h.topDown };
  return { desc, pixels: codec.view(out.offset, size) };
}

/**
 * Decodes an LZ stream of 32-bit pixels (rgb32 or rgba) straight into `target`, a rect of a larger
 * picture in the instance's memory: top row first whatever the stream's row order, rows
 * `target.stride` bytes apart (rgb32 pad bytes written as 0). A stream of another type or size is
 * refused before anything is written; a corrupt one may leave the rect partly written, never
 * anything outside it. Returns the image as written.
 */
export function decodeLzInto(codec: CodecInstance, data: Uint8Array, target: PixelTarget): ImageDesc {
  const x = codec.exports as LzExports;
  const h = readLzHeader(codec, data);
  const type = h.lzType === LZ_TYPE.rgb32 ? "rgb32" : h.lzType === LZ_TYPE.rgba ? "rgba" : undefined;
  if (type === undefined) throw new CodecError(`LZ decode into 32-bit pixels: the stream holds image type ${h.lzType}`);
  const span = checkTarget(target, x.memory.buffer.byteLength, "LZ image", h.width, h.height);
  // the stream is in the input region since readLzHeader
  const n = x.lzDecode(codec.input(data.length).offset, data.length, target.offset, span, target.stride, 1);
  if (n < 0) throw codecError("LZ decode", n);
  return { type, width: h.width, height: h.height, stride: target.stride, topDown: true };
}
