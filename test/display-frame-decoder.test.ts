// FrameDecoder: rects of every codec decoded straight into its screen in WASM memory, bottom-up
// LZ/GLZ images the right way up, and rects or streams that do not fit the screen refused untouched.
import { describe, it, expect } from "vitest";
import { FrameDecoder, sameBgr, type RectToDecode } from "../client/frame-decoder.js";
import { CodecInstance } from "../agent/src/codec/instance.js";
import { CodecError, type ImageDesc } from "../agent/src/codec/image.js";
import { encodeQuicPixels } from "../agent/src/codec/quic.js";
import { encodeLz } from "../agent/src/codec/lz.js";
import { GlzEncoder } from "../agent/src/codec/glz.js";
import { generateImage } from "../bench/test-images.js";
import type { Rect, RectCodec } from "../agent/src/display/types.js";

const W = 160, H = 100;

/** Packed BGRX rows of the rect r of a W-wide picture. */
function crop(px: Uint8Array, r: Rect): Uint8Array {
  const out = new Uint8Array(r.width * r.height * 4);
  for (let y = 0; y < r.height; y++) out.set(px.subarray(((r.y + y) * W + r.x) * 4, ((r.y + y) * W + r.x + r.width) * 4), y * r.width * 4);
  return out;
}

function flipRows(px: Uint8Array, rowBytes: number): Uint8Array {
  const rows = px.length / rowBytes;
  const out = new Uint8Array(px.length);
  for (let y = 0; y < rows; y++) out.set(px.subarray(y * rowBytes, (y + 1) * rowBytes), (rows - 1 - y) * rowBytes);
  return out;
}

/** Encodes rects of `picture` with the given codecs, as a stream sender would (GLZ through one encoder, so one sender per stream). */
class Sender {
  private readonly codec = new CodecInstance();
  private readonly glz = new GlzEncoder({ windowPixels: W * H * 2 });
  constructor(public picture: Uint8Array) {}
  rect(r: Rect, codec: RectCodec, topDown = true): RectToDecode {
    const px = crop(this.picture, r);
    const rows = topDown ? px : flipRows(px, r.width * 4);
    const desc: ImageDesc = { type: "rgb32", width: r.width, height: r.height, stride: r.width * 4, topDown };
    let data: Uint8Array;
    switch (codec) {
      case "raw": data = px; break;
      case "quic": data = encodeQuicPixels(this.codec, desc, px).slice(); break;
      case "lz":
        this.codec.input(rows.length).bytes.set(rows);
        data = encodeLz(this.codec, desc).slice();
        break;
      case "glz":
        this.glz.input(desc).bytes.set(rows);
        data = this.glz.encode(desc).slice();
        break;
    }
    return { ...r, codec, data };
  }
}

describe("FrameDecoder", () => {
  it("decodes rects of every codec into its screen, bottom-up images the right way up", () => {
    const first = generateImage("desktop", W, H);
    const second = generateImage("photo", W, H);
    const decoder = new FrameDecoder(W * H * 2);
    expect(decoder.pixels.length).toBe(0);
    const b = new Sender(first);
    decoder.apply(W, H, [b.rect({ x: 0, y: 0, width: W, height: H }, "raw")]);
    const early = decoder.pixels;
    expect(early.length).toBe(W * H * 4);
    expect(sameBgr(early, first)).toBe(true);
    // the first GLZ rect sets up the window in the same memory, which grows: views taken before are
    // detached, the getter gives a fresh one
    decoder.apply(W, H, [b.rect({ x: 0, y: 0, width: W, height: H }, "glz")]);
    expect(early.length).toBe(0);
    expect(sameBgr(decoder.pixels, first)).toBe(true);
    // then the second picture, in rects of each codec and row order, over the first
    b.picture = second;
    const rects: RectToDecode[] = [
      b.rect({ x: 0, y: 0, width: 40, height: 30 }, "raw"),
      b.rect({ x: 40, y: 0, width: 57, height: 30 }, "quic"),
      b.rect({ x: 97, y: 0, width: 63, height: 30 }, "lz", false),
      b.rect({ x: 0, y: 30, width: 80, height: 70 }, "lz"),
      b.rect({ x: 80, y: 30, width: 80, height: 35 }, "glz", false),
      b.rect({ x: 80, y: 65, width: 80, height: 35 }, "glz"),
    ];
    decoder.apply(W, H, rects);
    expect(sameBgr(decoder.pixels, second)).toBe(true);
    // a GLZ rect of content the window holds comes out the same
    const before = decoder.pixels.slice();
    decoder.apply(W, H, [b.rect({ x: 10, y: 10, width: 20, height: 20 }, "glz")]);
    expect(Buffer.from(decoder.pixels).equals(Buffer.from(before))).toBe(true);
  });

  it("gives a black screen of the new size when the size changes", () => {
    const decoder = new FrameDecoder();
    const s = new Sender(generateImage("desktop", W, H));
    decoder.apply(W, H, [s.rect({ x: 0, y: 0, width: W, height: H }, "lz")]);
    decoder.apply(20, 10, []);
    expect([decoder.width, decoder.height, decoder.pixels.length]).toEqual([20, 10, 800]);
    expect(decoder.pixels.every((b) => b === 0)).toBe(true);
    decoder.apply(W, H + 1, []);
    expect(decoder.pixels.length).toBe(W * (H + 1) * 4);
    expect(decoder.pixels.every((b) => b === 0)).toBe(true);
  });

  it("refuses rects outside the screen and streams of another size, leaving the screen as it was", () => {
    const picture = generateImage("desktop", W, H);
    const decoder = new FrameDecoder();
    const s = new Sender(picture);
    decoder.apply(W, H, [s.rect({ x: 0, y: 0, width: W, height: H }, "raw")]);
    const before = decoder.pixels.slice();
    const lz = s.rect({ x: 0, y: 0, width: 30, height: 20 }, "lz");
    const quic = s.rect({ x: 0, y: 0, width: 30, height: 20 }, "quic");
    const glz = s.rect({ x: 0, y: 0, width: 30, height: 20 }, "glz");
    const bad: RectToDecode[] = [
      { ...lz, x: -1 },
      { ...lz, y: H - 19 },
      { ...quic, x: W - 29 },
      { ...quic, x: 0.5 },
      { ...lz, width: 31 },
      { ...quic, height: 19 },
      { ...glz, width: 20, height: 30 },
      { ...lz, codec: "raw" },
    ];
    for (const r of bad) {
      expect(() => decoder.decodeRect(r), `${r.codec} ${r.width}x${r.height}+${r.x}+${r.y}`).toThrow(CodecError);
      expect(Buffer.from(decoder.pixels).equals(Buffer.from(before))).toBe(true);
    }
    // the GLZ decoder's window was not disturbed: the image still decodes in a rect of its size
    decoder.decodeRect({ ...glz, x: 5, y: 5 });
    expect(sameBgr(crop(decoder.pixels, { x: 5, y: 5, width: 30, height: 20 }), crop(picture, { x: 0, y: 0, width: 30, height: 20 }))).toBe(true);
  });
});
