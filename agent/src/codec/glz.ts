// SPICE GLZ (spice-server's glz-encoder format) over the WASM codec module. A GLZ encoder keeps a
// dictionary window of its earlier images, so each GlzEncoder / GlzDecoder owns a module instance;
// images must be decoded in the order they were encoded.
import { CodecInstance } from "./instance.js";
import { CodecError, checkImage, checkTarget, type ImageDesc, type PixelTarget } from "./image.js";
import { imageBytes, type LzExports } from "./lz.js";
import { codecError } from "./errors.js";

export interface GlzExports extends LzExports {
  glzInit(windowPixels: number): number;
  glzNextImageId(): number;
  glzWindowImages(): number;
  glzInputPtr(pixels: number): number;
  glzEncodeBound(type: number, width: number, height: number): number;
  glzEncode(type: number, width: number, height: number, stride: number, topDown: number,
    inPtr: number, outPtr: number, outCapacity: number): number;
  glzDecoderInit(windowPixels: number): number;
  glzDecodeHeader(inPtr: number, inLen: number, infoPtr: number): number;
  glzDecode(inPtr: number, inLen: number, outPtr: number, outCapacity: number, outStride: number, infoPtr: number, topFirst: number): number;
  glzDecodedPtr(): number;
}

/** The window spice-gtk asks for when it has no RAM hint (12 MiB of 32-bit pixels). */
export const DEFAULT_GLZ_WINDOW = 3145728;
/** The largest GLZ window a viewer is given (64 MiB of 32-bit pixels); a client keeping more is fine (we reference less). */
export const MAX_VIEWER_GLZ_WINDOW = 16_777_216;
const MAX_GLZ_WINDOW = 1 << 25;

const GLZ_TYPE: Record<string, number> = { rgb32: 8, rgba: 9 };

export interface GlzOptions {
  /** Dictionary window in pixels (the client's glz_dictionary_window_size); default 3145728. */
  windowPixels?: number;
}

function checkWindow(windowPixels: number): number {
  if (!Number.isInteger(windowPixels) || windowPixels < 1 || windowPixels > MAX_GLZ_WINDOW) {
    throw new CodecError(`GLZ window of ${windowPixels} pixels is not in 1..${MAX_GLZ_WINDOW}`);
  }
  return windowPixels;
}

/** Encodes a stream of images against a shared dictionary window; image ids start at 0. */
export class GlzEncoder {
  readonly codec: CodecInstance<GlzExports>;
  readonly windowPixels: number;

  constructor(options: GlzOptions = {}) {
    this.windowPixels = checkWindow(options.windowPixels ?? DEFAULT_GLZ_WINDOW);
    this.codec = new CodecInstance<GlzExports>();
    const err = this.codec.exports.glzInit(this.windowPixels);
    if (err < 0) throw codecError("GLZ init", err);
  }

  /**
   * Where to write the next image's pixels: the place in the dictionary window that the image will
   * occupy, when its rows are packed (stride = width × 4) and that place is free, so that encode()
   * codes it there with no copy; otherwise the input region. Valid until the next encode.
   */
  input(desc: ImageDesc): { offset: number; bytes: Uint8Array } {
    const size = imageBytes(desc);
    const pixels = desc.width * desc.height;
    const inWindow = GLZ_TYPE[desc.type] !== undefined && desc.stride === desc.width * 4 && pixels <= this.windowPixels
      ? this.codec.exports.glzInputPtr(pixels) : 0;
    if (inWindow === 0) return this.codec.input(size);
    return { offset: inWindow, bytes: this.codec.view(inWindow, size) };
  }

  /** Id the next encoded image gets. */
  get nextImageId(): number {
    return this.codec.exports.glzNextImageId();
  }

  /** Images currently in the dictionary window. */
  get windowImages(): number {
    return this.codec.exports.glzWindowImages();
  }

  /**
   * Encodes the image at `inputOffset` (default: where input(desc) put it) as the next GLZ image. Returns a
   * view of the stream in WASM memory, valid until the next call. Only rgb32 and rgba images of at
   * most `windowPixels` pixels can be GLZ-coded (spice-server sends larger ones as LZ).
   */
  encode(desc: ImageDesc, inputOffset?: number): Uint8Array {
    checkImage(desc);
    const type = GLZ_TYPE[desc.type];
    if (type === undefined) throw new CodecError(`GLZ cannot encode ${desc.type} images (only rgb32, rgba)`);
    if (desc.width * desc.height > this.windowPixels) {
      throw new CodecError(`a ${desc.width}x${desc.height} image does not fit a GLZ window of ${this.windowPixels} pixels`);
    }
    const x = this.codec.exports;
    const size = imageBytes(desc);
    const offset = inputOffset ?? this.input(desc).offset;
    if (offset < 0 || offset + size > x.memory.buffer.byteLength) {
      throw new CodecError(`input at ${offset} (${size} bytes) is outside the codec memory`);
    }
    const bound = x.glzEncodeBound(type, desc.width, desc.height);
    if (bound < 0) throw codecError("GLZ encode", bound);
    const out = this.codec.output(bound);
    const n = x.glzEncode(type, desc.width, desc.height, desc.stride, desc.topDown === false ? 0 : 1,
      offset, out.offset, out.capacity);
    if (n < 0) throw codecError("GLZ encode", n);
    return this.codec.view(out.offset, n);
  }
}

/** A decoded GLZ image's header. */
export interface GlzImage {
  desc: ImageDesc;
  imageId: number;
  /** The header's win_head_dist: how many earlier images the encoder's window still held. */
  windowHeadDistance: number;
}

export interface GlzDecoded extends GlzImage {
  /** Packed rows, 4 bytes per pixel; a view of WASM memory valid until the next decode. */
  pixels: Uint8Array;
}

export interface GlzDecoderOptions extends GlzOptions {
  /**
   * Decode in this instance (its memory then also holds the window), e.g. the one whose memory
   * holds the picture that decodeInto fills. An instance holds at most one GLZ decoder. Default: a new one.
   */
  codec?: CodecInstance;
}

/** Decodes a GLZ stream image by image, keeping the window the encoder's references need. */
export class GlzDecoder {
  readonly codec: CodecInstance<GlzExports>;
  readonly windowPixels: number;

  constructor(options: GlzDecoderOptions = {}) {
    this.windowPixels = checkWindow(options.windowPixels ?? DEFAULT_GLZ_WINDOW);
    this.codec = (options.codec ?? new CodecInstance()) as CodecInstance<GlzExports>;
    const err = this.codec.exports.glzDecoderInit(this.windowPixels);
    if (err < 0) throw codecError("GLZ decoder init", err);
  }

  /** Decodes the next image (images must come in encoding order). */
  decode(data: Uint8Array): GlzDecoded {
    const x = this.codec.exports;
    const inOff = this.codec.load(data);
    const info = this.codec.output(32).offset;
    const n = x.glzDecode(inOff, data.length, 0, 0, 0, info, 0);
    if (n < 0) throw codecError("GLZ decode", n);
    const image = this.imageInfo(info);
    return { ...image, pixels: this.codec.view(x.glzDecodedPtr(), image.desc.width * image.desc.height * 4) };
  }

  /**
   * Decodes the next image straight into `target`, a rect of a larger picture in this decoder's
   * instance, top row first whatever the stream's row order (the window keeps its own copy). A stream
   * of another size is refused, and the window left as it was, before anything is written; a corrupt
   * one writes nothing there.
   */
  decodeInto(data: Uint8Array, target: PixelTarget): GlzImage {
    const x = this.codec.exports;
    const inOff = this.codec.load(data);
    const info = this.codec.output(32).offset;
    const err = x.glzDecodeHeader(inOff, data.length, info);
    if (err < 0) throw codecError("GLZ decode", err);
    const header = this.imageInfo(info);
    const span = checkTarget(target, x.memory.buffer.byteLength, "GLZ image", header.desc.width, header.desc.height);
    const n = x.glzDecode(inOff, data.length, target.offset, span, target.stride, info, 1);
    if (n < 0) throw codecError("GLZ decode", n);
    return { ...header, desc: { ...header.desc, stride: target.stride, topDown: true } };
  }

  /** The header glzDecode / glzDecodeHeader wrote at `info`. */
  private imageInfo(info: number): GlzImage {
    const { buffer } = this.codec.exports.memory;
    const v = new Int32Array(buffer, info, 8);
    const u = new Uint32Array(buffer, info, 8);
    const width = v[1];
    const height = v[2];
    return {
      desc: { type: v[0] === 9 ? "rgba" : "rgb32", width, height, stride: width * 4, topDown: v[3] !== 0 },
      imageId: u[5] * 2 ** 32 + u[4],
      windowHeadDistance: u[6],
    };
  }
}

/**
 * encodeQuic/encodeLz's counterpart for GLZ: the next image of `encoder`'s stream (the encoder holds
 * the dictionary, so it takes the place of their CodecInstance). See GlzEncoder.encode.
 */
export function encodeGlz(encoder: GlzEncoder, desc: ImageDesc, inputOffset?: number): Uint8Array {
  return encoder.encode(desc, inputOffset);
}

/** decodeQuic/decodeLz's counterpart for GLZ: the next image of `decoder`'s stream. */
export function decodeGlz(decoder: GlzDecoder, data: Uint8Array): GlzDecoded {
  return decoder.decode(data);
}
