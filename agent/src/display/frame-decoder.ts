// The client side of a display stream: decodes every rect with the WASM decoders into a local BGRX
// framebuffer (CLI, benchmarks, tests, and later the web page). GLZ rects go through one GlzDecoder,
// in stream order, as the encoder's dictionary requires.
import { CodecInstance } from "../codec/instance.js";
import { decodeQuic } from "../codec/quic.js";
import { decodeLz } from "../codec/lz.js";
import { GlzDecoder, DEFAULT_GLZ_WINDOW } from "../codec/glz.js";
import { CodecError } from "../codec/image.js";
import type { Rect, RectCodec } from "./types.js";

export interface RectToDecode extends Rect {
  codec: RectCodec;
  data: Uint8Array;
}

export class FrameDecoder {
  width = 0;
  height = 0;
  /** Packed BGRX rows (stride = width × 4); the pad byte is whatever the codec gives (0 for QUIC/LZ/GLZ). */
  pixels = new Uint8Array(0);
  private readonly codec = new CodecInstance();
  private glz: GlzDecoder | undefined;

  constructor(private readonly glzWindowPixels = DEFAULT_GLZ_WINDOW) {}

  /** Applies one update's rects (resizing first when the screen size differs). */
  apply(width: number, height: number, rects: RectToDecode[]): void {
    if (width !== this.width || height !== this.height) {
      this.width = width;
      this.height = height;
      this.pixels = new Uint8Array(width * height * 4);
    }
    for (const r of rects) this.decodeRect(r);
  }

  decodeRect(r: RectToDecode): void {
    if (r.x + r.width > this.width || r.y + r.height > this.height || r.width < 1 || r.height < 1) {
      throw new CodecError(`rect ${r.width}x${r.height}+${r.x}+${r.y} lies outside the ${this.width}x${this.height} screen`);
    }
    let src: Uint8Array;
    let w = r.width;
    let h = r.height;
    switch (r.codec) {
      case "raw":
        if (r.data.length !== r.width * r.height * 4) throw new CodecError(`raw rect of ${r.width}x${r.height} has ${r.data.length} bytes`);
        src = r.data;
        break;
      case "quic": {
        const d = decodeQuic(this.codec, r.data);
        ({ width: w, height: h } = d.desc);
        src = d.pixels;
        break;
      }
      case "lz": {
        const d = decodeLz(this.codec, r.data);
        ({ width: w, height: h } = d.desc);
        src = d.pixels;
        if (d.desc.topDown === false) src = flip(src, w * 4, h);
        break;
      }
      case "glz": {
        this.glz ??= new GlzDecoder({ windowPixels: this.glzWindowPixels });
        const d = this.glz.decode(r.data);
        ({ width: w, height: h } = d.desc);
        src = d.pixels;
        if (d.desc.topDown === false) src = flip(src, w * 4, h);
        break;
      }
    }
    if (w !== r.width || h !== r.height) throw new CodecError(`${r.codec} image is ${w}x${h}, the rect ${r.width}x${r.height}`);
    const rowBytes = r.width * 4;
    const stride = this.width * 4;
    for (let y = 0; y < r.height; y++) {
      this.pixels.set(src.subarray(y * rowBytes, (y + 1) * rowBytes), (r.y + y) * stride + r.x * 4);
    }
  }
}

function flip(src: Uint8Array, rowBytes: number, height: number): Uint8Array {
  const out = new Uint8Array(rowBytes * height);
  for (let y = 0; y < height; y++) out.set(src.subarray(y * rowBytes, (y + 1) * rowBytes), (height - 1 - y) * rowBytes);
  return out;
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
