// One viewer's encoder state: a whole-frame buffer inside its codec's WASM memory (reads from the
// framebuffer file land there, the codecs read from there), a shadow of the pixels last sent (to find
// the changed columns), and its own GLZ dictionary window.
import { CodecInstance } from "../codec/instance.js";
import { encodeQuic } from "../codec/quic.js";
import { encodeLz } from "../codec/lz.js";
import { GlzEncoder, encodeGlz } from "../codec/glz.js";
import type { ImageDesc } from "../codec/image.js";
import { chooseCodec, gradualityOf, gradualityScore } from "./codec-policy.js";
import { diffRects, pagesToBands, type DiffOptions } from "./dirty-rects.js";
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
  /** Rects encoded, per codec. */
  rects: Record<RectCodec, number>;
  /** Encoded bytes, per codec. */
  bytes: Record<RectCodec, number>;
}

export class ViewerEncoder {
  private readonly codec: CodecInstance;
  /** The viewer's GLZ dictionary; it outlives a geometry change (the client keeps its window). */
  readonly glz: GlzEncoder | undefined;
  private readonly frameOffset: number;
  private readonly shadow: Uint32Array;
  readonly counters: EncoderCounters = {
    bytesRead: 0,
    busyMs: 0,
    pixels: 0,
    rects: { raw: 0, quic: 0, lz: 0, glz: 0 },
    bytes: { raw: 0, quic: 0, lz: 0, glz: 0 },
  };

  /** `glz`: the GLZ encoder of this viewer's previous surface, whose image ids and window go on. */
  constructor(
    readonly info: FramebufferInfo,
    readonly policy: CodecPolicy,
    glz?: GlzEncoder,
    private readonly diffOptions: DiffOptions = {},
  ) {
    if (info.stride % 4 !== 0 || info.stride < info.width * 4) throw new Error(`framebuffer stride ${info.stride} does not fit ${info.width} BGRX pixels`);
    const { compression, decoder } = policy;
    const mayGlz = (compression === "glz" || compression === "auto_glz") && decoder.codecs.includes("glz") && decoder.glzWindowPixels > 0;
    this.glz = mayGlz ? (glz ?? new GlzEncoder({ windowPixels: decoder.glzWindowPixels })) : undefined;
    // QUIC and LZ run in the GLZ encoder's instance when there is one: the module has every codec.
    this.codec = this.glz ? this.glz.codec : new CodecInstance();
    const frameBytes = info.stride * info.height;
    const region = this.codec.input(frameBytes + 16);
    this.frameOffset = (region.offset + 15) & ~15;
    this.shadow = new Uint32Array(frameBytes / 4);
  }

  /** A fresh view of the frame in WASM memory (memory.grow detaches older views). */
  frame(): Uint8Array {
    return this.codec.view(this.frameOffset, this.info.stride * this.info.height);
  }

  /** Reads the whole screen and encodes it as the keyframe's rects. */
  keyframe(fb: FramebufferFile): EncodedRect[] {
    const started = performance.now();
    const frame = this.frame();
    fb.readFrame(frame);
    this.counters.bytesRead += frame.length;
    this.shadow.set(new Uint32Array(frame.buffer, frame.byteOffset, this.shadow.length));
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
    const { stride, width, height } = this.info;
    const bands = pagesToBands(dirtyPages, stride, height);
    if (bands.length === 0) return [];
    let frame = this.frame();
    for (const b of bands) {
      fb.readRows(frame, b.y0, b.y1);
      this.counters.bytesRead += (b.y1 - b.y0) * stride;
    }
    frame = this.frame();
    const cur = new Uint32Array(frame.buffer, frame.byteOffset, this.shadow.length);
    const rects = diffRects(cur, this.shadow, width, stride / 4, bands, this.diffOptions);
    const words = stride / 4;
    for (const b of bands) this.shadow.set(cur.subarray(b.y0 * words, b.y1 * words), b.y0 * words);
    return rects;
  }

  /** Encodes one rect of the frame in WASM memory with the codec the policy picks. */
  encodeRect(r: Rect): EncodedRect {
    const { stride } = this.info;
    const offset = this.frameOffset + r.y * stride + r.x * 4;
    const desc: ImageDesc = { type: "rgb32", width: r.width, height: r.height, stride };
    const codec = chooseCodec(this.policy, {
      width: r.width,
      height: r.height,
      graduality: () => gradualityOf(gradualityScore(this.codec.view(0, this.codec.exports.memory.buffer.byteLength), offset, r.width, r.height, stride)),
    });
    // Each encoding is copied out of WASM memory once, into a buffer of its own (slice), so that it can
    // be transferred to the agent's main thread without another copy.
    let data: Uint8Array;
    let glzImageId = 0;
    switch (codec) {
      case "raw": {
        const rowBytes = r.width * 4;
        data = new Uint8Array(rowBytes * r.height);
        const mem = this.codec.view(offset, stride * (r.height - 1) + rowBytes);
        for (let y = 0; y < r.height; y++) data.set(mem.subarray(y * stride, y * stride + rowBytes), y * rowBytes);
        break;
      }
      case "quic":
        data = encodeQuic(this.codec, desc, offset).slice();
        break;
      case "lz":
        data = encodeLz(this.codec, desc, offset).slice();
        break;
      case "glz":
        glzImageId = this.glz!.nextImageId;
        data = encodeGlz(this.glz!, desc, offset).slice();
        break;
    }
    this.counters.rects[codec]++;
    this.counters.pixels += r.width * r.height;
    this.counters.bytes[codec] += data.length;
    return { ...r, codec, data, glzImageId };
  }
}
