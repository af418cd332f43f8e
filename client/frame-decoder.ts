// The client side of a display stream: decodes every rect with the WASM decoders straight into a
// local BGRX screen (the CLI, benchmarks and tests; the web console later: nothing here needs Node). The screen lives in the memory
// of one codec instance, where QUIC, LZ and GLZ all decode (the module has every codec); GLZ rects go
// through one GlzDecoder in that instance, in stream order, as the encoder's dictionary requires.
import { CodecInstance } from "../agent/src/codec/instance.js";
import { decodeQuicInto } from "../agent/src/codec/quic.js";
import { decodeLzInto } from "../agent/src/codec/lz.js";
import { GlzDecoder, DEFAULT_GLZ_WINDOW } from "../agent/src/codec/glz.js";
import { CodecError, type PixelTarget } from "../agent/src/codec/image.js";
import type { Rect, RectCodec } from "../agent/src/display/types.js";

export interface RectToDecode extends Rect {
  codec: RectCodec;
  data: Uint8Array;
}

export class FrameDecoder {
  width = 0;
  height = 0;
  private readonly codec = new CodecInstance();
  private glz: GlzDecoder | undefined;
  /** Offset of the screen in the instance's memory, and the bytes allocated there. */
  private screen = 0;
  private screenBytes = 0;

  /** `glzWindowPixels`: the window this client announced (0: none, so a GLZ rect is an error). */
  constructor(private readonly glzWindowPixels = DEFAULT_GLZ_WINDOW) {}

  /**
   * The screen: packed BGRX rows (stride = width × 4); the pad byte is whatever the codec gives (0 for
   * QUIC/LZ/GLZ). A fresh view of WASM memory, valid until the next apply or decodeRect.
   */
  get pixels(): Uint8Array {
    return this.codec.view(this.screen, this.width * this.height * 4);
  }

  /** Applies one update's rects (resizing first when the screen size differs). */
  apply(width: number, height: number, rects: RectToDecode[]): void {
    if (width !== this.width || height !== this.height) this.resize(width, height);
    for (const r of rects) this.decodeRect(r);
  }

  decodeRect(r: RectToDecode): void {
    const whole = (v: number) => Number.isInteger(v) && v >= 0;
    if (!whole(r.x) || !whole(r.y) || !whole(r.width) || !whole(r.height) || r.width < 1 || r.height < 1 ||
        r.x + r.width > this.width || r.y + r.height > this.height) {
      throw new CodecError(`rect ${r.width}x${r.height}+${r.x}+${r.y} lies outside the ${this.width}x${this.height} screen`);
    }
    const stride = this.width * 4;
    const target: PixelTarget = { offset: this.screen + r.y * stride + r.x * 4, stride, width: r.width, height: r.height };
    switch (r.codec) {
      case "raw": {
        const rowBytes = r.width * 4;
        if (r.data.length !== rowBytes * r.height) throw new CodecError(`raw rect of ${r.width}x${r.height} has ${r.data.length} bytes`);
        const rows = this.codec.view(target.offset, stride * (r.height - 1) + rowBytes);
        for (let y = 0; y < r.height; y++) rows.set(r.data.subarray(y * rowBytes, (y + 1) * rowBytes), y * stride);
        break;
      }
      case "quic":
        decodeQuicInto(this.codec, r.data, target);
        break;
      case "lz":
        decodeLzInto(this.codec, r.data, target);
        break;
      case "glz":
        if (this.glzWindowPixels === 0) throw new CodecError("a GLZ rect reached a client that keeps no GLZ window");
        this.glz ??= new GlzDecoder({ windowPixels: this.glzWindowPixels, codec: this.codec });
        this.glz.decodeInto(r.data, target);
        break;
    }
  }

  /** A black screen of the new size (memory is allocated only when it grows). */
  private resize(width: number, height: number): void {
    const bytes = width * height * 4;
    if (bytes > this.screenBytes) {
      this.screen = this.codec.exports.alloc(bytes);
      this.screenBytes = bytes;
    }
    this.width = width;
    this.height = height;
    this.pixels.fill(0);
  }
}

/** Whether two BGRX frames show the same picture (the pad byte is ignored). */
export function sameBgr(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 4) {
    if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) return false;
  }
  return true;
}

/** First differing pixel of two BGRX frames (pad ignored), for test messages. */
export function firstBgrDifference(a: Uint8Array, b: Uint8Array, width: number): string | undefined {
  for (let i = 0; i < Math.min(a.length, b.length); i += 4) {
    if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) {
      const p = i / 4;
      return `pixel (${p % width}, ${Math.floor(p / width)}): ${[...a.subarray(i, i + 3)]} vs ${[...b.subarray(i, i + 3)]}`;
    }
  }
  return a.length === b.length ? undefined : `lengths ${a.length} vs ${b.length}`;
}
