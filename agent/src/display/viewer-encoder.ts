// One viewer's encoder state: a whole-frame buffer inside its codec's WASM memory (reads from the
// framebuffer file land there, the codecs read from there), a shadow of the pixels last sent beside it
// (the module finds the changed columns), and its own GLZ dictionary window.
import { CodecInstance } from "../codec/instance.js";
import { encodeQuic } from "../codec/quic.js";
import { encodeLz } from "../codec/lz.js";
import { GlzEncoder, encodeGlz } from "../codec/glz.js";
import type { ImageDesc } from "../codec/image.js";
import { gradualityScore } from "../codec/graduality.js";
import { chooseCodec, gradualityOf } from "./codec-policy.js";
import { FrameShadow, pagesToBands, type DiffOptions } from "./dirty-rects.js";
import type { FramebufferFile } from "./framebuffer-file.js";
import type { CodecPolicy, FramebufferInfo, Rect, RectCodec } from "./types.js";

/** One encoded rect; `data` owns its buffer, so it can be transferred out of a worker. */
export interface EncodedRect extends Rect {
  codec: RectCodec;
  data: Uint8Array;
  /** GLZ: the image id in the viewer's dictionary (0 otherwise). */
  glzImageId: number;
}

export interface EncoderCounters {
  /** Bytes read from the framebuffer file. */
  bytesRead: number;
  /** Time spent reading, finding rects and encoding (ms). */
  busyMs: number;
  /** Pixels of the rects encoded. */
  pixels: number;
}

export class ViewerEncoder {
  private readonly codec: CodecInstance;
  /** The viewer's GLZ dictionary; it outlives a geometry change (the client keeps its window). */
  readonly glz: GlzEncoder | undefined;
  private readonly frameShadow: FrameShadow;
  readonly counters: EncoderCounters = {
    bytesRead: 0,
    busyMs: 0,
    pixels: 0,
  };

  /**
   * `previous`: this viewer's encoder for its previous surface. Its GLZ dictionary goes on (image ids
   * and window), and its frame and shadow memory is reused when the new frame fits.
   */
  constructor(
    readonly info: FramebufferInfo,
    readonly policy: CodecPolicy,
    previous?: ViewerEncoder,
    private readonly diffOptions: DiffOptions = {},
  ) {
    if (info.stride % 4 !== 0 || info.stride < info.width * 4) throw new Error(`framebuffer stride ${info.stride} does not fit ${info.width} BGRX pixels`);
    const { compression, decoder } = policy;
    const mayGlz = (compression === "glz" || compression === "auto_glz") && decoder.codecs.includes("glz") && decoder.glzWindowPixels > 0;
    this.glz = mayGlz ? (previous?.glz ?? new GlzEncoder({ windowPixels: decoder.glzWindowPixels })) : undefined;
    // QUIC and LZ run in the GLZ encoder's instance when there is one: the module has every codec.
    this.codec = this.glz ? this.glz.codec : (previous?.codec ?? new CodecInstance());
    const reuse = previous && previous.codec === this.codec ? previous.frameShadow : undefined;
    this.frameShadow = new FrameShadow(this.codec, info.width, info.height, info.stride, reuse);
  }

  /** A fresh view of the frame in WASM memory (memory.grow detaches older views). */
  frame(): Uint8Array {
    return this.frameShadow.frame();
  }

  /** Reads the whole screen and encodes it as the keyframe's rects. */
  keyframe(fb: FramebufferFile): EncodedRect[] {
    const started = performance.now();
    const frame = this.frame();
    fb.readFrame(frame);
    this.counters.bytesRead += frame.length;
    this.frameShadow.keep();
    const rects = [this.encodeRect({ x: 0, y: 0, width: this.info.width, height: this.info.height })];
    this.counters.busyMs += performance.now() - started;
    return rects;
  }

  /**
   * Reads the rows of the dirty pages, finds the changed rects against the shadow, and encodes them.
   * Returns [] when the pages were written with the pixels they already had.
   */
  update(fb: FramebufferFile, dirtyPages: Uint8Array): EncodedRect[] {
    const started = performance.now();
    const rects = this.dirtyRects(fb, dirtyPages).map((r) => this.encodeRect(r));
    this.counters.busyMs += performance.now() - started;
    return rects;
  }

  /** The changed rects (the rows are read and the shadow updated); exposed for benchmarks and tests. */
  dirtyRects(fb: FramebufferFile, dirtyPages: Uint8Array): Rect[] {
    const { stride, height } = this.info;
    const bands = pagesToBands(dirtyPages, stride, height);
    if (bands.length === 0) return [];
    const frame = this.frame();
    for (const b of bands) {
      fb.readRows(frame, b.y0, b.y1);
      this.counters.bytesRead += (b.y1 - b.y0) * stride;
    }
    return this.frameShadow.diffRects(bands, this.diffOptions);
  }

  /** Encodes one rect of the frame in WASM memory with the codec the policy picks. */
  encodeRect(r: Rect): EncodedRect {
    const { stride } = this.info;
    const offset = this.frameShadow.frameOffset + r.y * stride + r.x * 4;
    const desc: ImageDesc = { type: "rgb32", width: r.width, height: r.height, stride };
    const codec = chooseCodec(this.policy, {
      width: r.width,
      height: r.height,
      graduality: () => gradualityOf(gradualityScore(this.codec, offset, r.width, r.height, stride)),
    });
    // Each encoding is copied out of WASM memory once, into a buffer of its own, so that it can be
    // transferred to the agent's main thread without another copy.
    let data: Uint8Array;
    let glzImageId = 0;
    switch (codec) {
      case "raw": {
        const rowBytes = r.width * 4;
        data = Buffer.allocUnsafeSlow(rowBytes * r.height);
        const mem = this.codec.view(offset, stride * (r.height - 1) + rowBytes);
        for (let y = 0; y < r.height; y++) data.set(mem.subarray(y * stride, y * stride + rowBytes), y * rowBytes);
        break;
      }
      case "quic":
        data = ownCopy(encodeQuic(this.codec, desc, offset));
        break;
      case "lz":
        data = ownCopy(encodeLz(this.codec, desc, offset));
        break;
      case "glz":
        glzImageId = this.glz!.nextImageId;
        data = ownCopy(encodeGlz(this.glz!, desc, offset));
        break;
    }
    this.counters.pixels += r.width * r.height;
    return { ...r, codec, data, glzImageId };
  }
}

/** A copy in a buffer of its own (not Node's shared pool, and not zero-filled first), so it can be transferred. */
function ownCopy(bytes: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafeSlow(bytes.length);
  out.set(bytes);
  return out;
}
