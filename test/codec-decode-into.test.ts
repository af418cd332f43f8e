// Decoding straight into a rect of a larger picture in the codec's memory (decodeQuicInto,
// decodeLzInto, GlzDecoder.decodeInto, and lzDecode's strided rows): the rect gets the image top row
// first, nothing outside it is ever written, and a stream that does not fit is refused first.
import { describe, it, expect } from "vitest";
import { CodecInstance } from "../agent/src/codec/instance.js";
import { BYTES_PER_PIXEL, CodecError, type ImageDesc, type ImageType, type PixelTarget } from "../agent/src/codec/image.js";
import { decodeLz, decodeLzInto, encodeLz, type LzExports } from "../agent/src/codec/lz.js";
import { decodeQuicInto, encodeQuicPixels } from "../agent/src/codec/quic.js";
import { GlzDecoder, GlzEncoder } from "../agent/src/codec/glz.js";
import { generateImage } from "../bench/test-images.js";
import { bitFlipped, randomBody, rng, truncated } from "./helpers/vectors.js";

/** A picture of width × height 32-bit pixels in `codec`'s memory, filled with a pattern no decoder writes. */
class Screen {
  readonly offset: number;
  constructor(readonly codec: CodecInstance, readonly width: number, readonly height: number) {
    this.offset = codec.exports.alloc(width * height * 4);
    const px = this.bytes();
    for (let i = 0; i < px.length; i++) px[i] = (i * 31 + 7) & 255 | 1;
  }
  bytes(): Uint8Array {
    return this.codec.view(this.offset, this.width * this.height * 4);
  }
  target(x: number, y: number, width: number, height: number): PixelTarget {
    return { offset: this.offset + (y * this.width + x) * 4, stride: this.width * 4, width, height };
  }
  /** The rect's pixels as packed rows. */
  read(t: PixelTarget): Uint8Array {
    const out = new Uint8Array(t.width * t.height * 4);
    const px = this.bytes();
    for (let y = 0; y < t.height; y++) out.set(px.subarray(t.offset - this.offset + y * t.stride, t.offset - this.offset + y * t.stride + t.width * 4), y * t.width * 4);
    return out;
  }
  /** Fails if any byte outside the rect differs from `before`. */
  expectOutsideUnchanged(before: Uint8Array, t: PixelTarget, what: string): void {
    const now = this.bytes();
    const x0 = (t.offset - this.offset) / 4 % this.width, y0 = Math.floor((t.offset - this.offset) / 4 / this.width);
    for (let i = 0; i < now.length; i++) {
      if (now[i] === before[i]) continue;
      const p = i >> 2, x = p % this.width, y = Math.floor(p / this.width);
      const inside = x >= x0 && x < x0 + t.width && y >= y0 && y < y0 + t.height;
      if (!inside) expect.fail(`${what}: byte ${i} (pixel ${x},${y}) outside the rect ${t.width}x${t.height}+${x0}+${y0} was written`);
    }
  }
}

/** Packed rows of an image with its rows in reverse order (how a bottom-up stream is fed to an encoder). */
function flipRows(px: Uint8Array, rowBytes: number): Uint8Array {
  const rows = px.length / rowBytes;
  const out = new Uint8Array(px.length);
  for (let y = 0; y < rows; y++) out.set(px.subarray(y * rowBytes, (y + 1) * rowBytes), (rows - 1 - y) * rowBytes);
  return out;
}

/** The image as the decoders give it: rgb32 pad bytes 0, rgba alpha kept. */
function decoded(px: Uint8Array, type: "rgb32" | "rgba"): Uint8Array {
  const e = px.slice();
  if (type === "rgb32") for (let i = 3; i < e.length; i += 4) e[i] = 0;
  return e;
}

/** A w × h crop of a generated image, with an alpha channel that is not constant. */
function picture(kind: "desktop" | "photo" | "noise", w: number, h: number, seed: number): Uint8Array {
  const px = generateImage(kind, w, h);
  const r = rng(seed);
  for (let i = 3; i < px.length; i += 4) px[i] = r() % 3 === 0 ? 255 : (i >> 6) & 0xf0;
  return px;
}

function lzStream(codec: CodecInstance, type: "rgb32" | "rgba", px: Uint8Array, w: number, h: number, topDown: boolean): Uint8Array {
  const rows = topDown ? px : flipRows(px, w * 4);
  codec.input(rows.length).bytes.set(rows);
  return encodeLz(codec, { type, width: w, height: h, stride: w * 4, topDown }).slice();
}

const W = 97, H = 61;
const sizes: [number, number][] = [[1, 1], [1, 17], [13, 1], [16, 16], [29, 40], [W, H]];

describe("decoding into a rect of a larger picture", () => {
  it("QUIC: rgb32 and rgba, at any place, touching nothing outside the rect", () => {
    const enc = new CodecInstance();
    const screen = new Screen(new CodecInstance(), W, H);
    let seed = 1;
    for (const type of ["rgb32", "rgba"] as const) {
      for (const [w, h] of sizes) {
        const px = picture(seed % 2 ? "desktop" : "photo", w, h, seed++);
        const stream = encodeQuicPixels(enc, { type, width: w, height: h, stride: w * 4 }, px).slice();
        const t = screen.target(W - w - (seed % (W - w + 1) || 0), (seed * 7) % (H - h + 1), w, h);
        const before = screen.bytes().slice();
        expect(decodeQuicInto(screen.codec, stream, t)).toEqual({ type, width: w, height: h, stride: W * 4, topDown: true });
        expect(Buffer.from(screen.read(t)).equals(Buffer.from(decoded(px, type))), `${type} ${w}x${h}`).toBe(true);
        screen.expectOutsideUnchanged(before, t, `${type} ${w}x${h}`);
      }
    }
  });

  it("LZ: rgb32 and rgba streams in either row order come out top row first", () => {
    const enc = new CodecInstance();
    const screen = new Screen(new CodecInstance(), W, H);
    let seed = 100;
    for (const type of ["rgb32", "rgba"] as const) {
      for (const topDown of [true, false]) {
        for (const [w, h] of sizes) {
          const px = picture(seed % 3 === 0 ? "noise" : "desktop", w, h, seed++);
          const stream = lzStream(enc, type, px, w, h, topDown);
          const t = screen.target((seed * 5) % (W - w + 1), (seed * 3) % (H - h + 1), w, h);
          const before = screen.bytes().slice();
          expect(decodeLzInto(screen.codec, stream, t)).toEqual({ type, width: w, height: h, stride: W * 4, topDown: true });
          expect(Buffer.from(screen.read(t)).equals(Buffer.from(decoded(px, type))), `${type} topDown=${topDown} ${w}x${h}`).toBe(true);
          screen.expectOutsideUnchanged(before, t, `${type} ${w}x${h}`);
        }
      }
    }
  });

  it("GLZ: a stream of frames referencing earlier ones, in either row order, decoded in the picture's instance", () => {
    const screen = new Screen(new CodecInstance(), W, H);
    const enc = new GlzEncoder({ windowPixels: 20000 });
    const dec = new GlzDecoder({ windowPixels: 20000, codec: screen.codec });
    expect(dec.codec).toBe(screen.codec);
    const base = picture("desktop", 40, 30, 9);
    for (let i = 0; i < 12; i++) {
      const type = i % 3 === 2 ? "rgba" : "rgb32";
      const topDown = i % 2 === 0;
      const px = base.slice();
      px.fill(i * 20, ((i * 7) % 30) * 160, ((i * 7) % 30) * 160 + 64); // a small change per frame
      const rows = topDown ? px : flipRows(px, 160);
      const desc: ImageDesc = { type, width: 40, height: 30, stride: 160, topDown };
      enc.input(desc).bytes.set(rows);
      const stream = enc.encode(desc).slice();
      if (i > 1 && type === "rgb32") expect(stream.length).toBeLessThan(px.length / 8); // it refers to earlier frames
      const t = screen.target((i * 11) % (W - 40), (i * 5) % (H - 30), 40, 30);
      const before = screen.bytes().slice();
      const got = dec.decodeInto(stream, t);
      expect(got.imageId).toBe(i);
      expect(got.desc).toEqual({ type, width: 40, height: 30, stride: W * 4, topDown: true });
      expect(Buffer.from(screen.read(t)).equals(Buffer.from(decoded(px, type))), `frame ${i}`).toBe(true);
      screen.expectOutsideUnchanged(before, t, `frame ${i}`);
    }
  });

  it("refuses a stream whose size or type does not fit, or a target outside memory, before writing", () => {
    const enc = new CodecInstance();
    const screen = new Screen(new CodecInstance(), W, H);
    const px = picture("desktop", 20, 10, 3);
    const quic = encodeQuicPixels(enc, { type: "rgb32", width: 20, height: 10, stride: 80 }, px).slice();
    const lz = lzStream(enc, "rgb32", px, 20, 10, false);
    enc.input(600).bytes.set(px.subarray(0, 600));
    const lz24 = encodeLz(enc, { type: "rgb24", width: 20, height: 10, stride: 60 }).slice();
    const before = screen.bytes().slice();
    const wrong = screen.target(0, 0, 20, 11);
    expect(() => decodeQuicInto(screen.codec, quic, wrong)).toThrow(/QUIC image is 20x10, not the 20x11/);
    expect(() => decodeLzInto(screen.codec, lz, screen.target(0, 0, 19, 10))).toThrow(/LZ image is 20x10, not the 19x10/);
    expect(() => decodeLzInto(screen.codec, lz24, screen.target(0, 0, 20, 10))).toThrow(CodecError);
    const beyond: PixelTarget = { offset: screen.codec.exports.memory.buffer.byteLength - 100, stride: 80, width: 20, height: 10 };
    expect(() => decodeLzInto(screen.codec, lz, beyond)).toThrow(/outside the codec's memory/);
    expect(() => decodeQuicInto(screen.codec, quic, { ...screen.target(0, 0, 20, 10), stride: 76 })).toThrow(/stride 76/);
    expect(() => decodeQuicInto(screen.codec, quic, { ...screen.target(0, 0, 20, 10), offset: -4 })).toThrow(CodecError);
    expect(Buffer.from(screen.bytes()).equals(Buffer.from(before))).toBe(true);

    // GLZ: the window is left as it was, so the same stream then decodes into a rect of its size
    const genc = new GlzEncoder({ windowPixels: 4096 });
    const gdec = new GlzDecoder({ windowPixels: 4096, codec: screen.codec });
    genc.input({ type: "rgb32", width: 20, height: 10, stride: 80 }).bytes.set(px);
    const glz = genc.encode({ type: "rgb32", width: 20, height: 10, stride: 80 }).slice();
    expect(() => gdec.decodeInto(glz, screen.target(0, 0, 10, 20))).toThrow(/GLZ image is 20x10, not the 10x20/);
    expect(Buffer.from(screen.bytes()).equals(Buffer.from(before))).toBe(true);
    expect(gdec.decodeInto(glz, screen.target(1, 1, 20, 10)).imageId).toBe(0);
  });

  it("hostile streams never write outside the rect (seeded fuzz)", () => {
    const enc = new CodecInstance();
    const screen = new Screen(new CodecInstance(), 64, 48);
    const r = rng(0xdec0de);
    // valid streams to mutate, with the size of the rect each fills
    const seeds: { codec: "quic" | "lz" | "glz"; data: Uint8Array; w: number; h: number }[] = [];
    for (const [w, h] of [[20, 10], [7, 30], [33, 3]] as [number, number][]) {
      const px = picture("desktop", w, h, w);
      seeds.push({ codec: "quic", data: encodeQuicPixels(enc, { type: "rgb32", width: w, height: h, stride: w * 4 }, px).slice(), w, h });
      seeds.push({ codec: "lz", data: lzStream(enc, "rgb32", px, w, h, w % 2 === 0), w, h });
      seeds.push({ codec: "lz", data: lzStream(enc, "rgba", px, w, h, true), w, h });
    }
    const genc = new GlzEncoder({ windowPixels: 8192 });
    const glzFrames: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const px = picture("desktop", 24, 16, 50 + (i >> 1));
      const desc: ImageDesc = { type: "rgb32", width: 24, height: 16, stride: 96, topDown: i !== 1 };
      genc.input(desc).bytes.set(px);
      glzFrames.push(genc.encode(desc).slice());
    }
    seeds.push({ codec: "glz", data: glzFrames[2], w: 24, h: 16 });
    let decoded = 0, rejected = 0;
    for (let i = 0; i < 1500; i++) {
      const seed = seeds[r() % seeds.length];
      const header = seed.codec === "quic" ? 20 : seed.codec === "lz" ? 28 : 33;
      const mode = i % 3;
      const data = mode === 0 ? truncated(r, seed.data) : mode === 1 ? bitFlipped(r, seed.data, header) : randomBody(r, seed.data, header);
      // the rect the original stream fills, somewhere on the screen
      const t = screen.target(r() % (64 - seed.w + 1), r() % (48 - seed.h + 1), seed.w, seed.h);
      const before = screen.bytes().slice();
      try {
        if (seed.codec === "quic") decodeQuicInto(screen.codec, data, t);
        else if (seed.codec === "lz") decodeLzInto(screen.codec, data, t);
        else {
          const dec = new GlzDecoder({ windowPixels: 8192, codec: screen.codec });
          dec.decodeInto(glzFrames[0], screen.target(0, 0, 24, 16));
          dec.decodeInto(glzFrames[1], screen.target(0, 0, 24, 16));
          before.set(screen.bytes());
          dec.decodeInto(data, t);
        }
        decoded++;
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        rejected++;
      }
      screen.expectOutsideUnchanged(before, t, `case ${i} (${seed.codec}, mode ${mode})`);
    }
    expect(decoded + rejected).toBe(1500);
    expect(rejected).toBeGreaterThan(500);
  });

  it("lzDecode writes every LZ type at a padded stride, in stream order or top row first, as the packed decode", () => {
    const codec = new CodecInstance();
    const x = codec.exports as LzExports;
    const types: ImageType[] = ["rgb32", "rgba", "rgb24", "rgb16", "plt8"];
    for (const type of types) {
      for (const [w, h] of [[1, 23], [5, 9], [31, 17], [100, 12]] as [number, number][]) {
        for (const topDown of [true, false]) {
          const bpp = BYTES_PER_PIXEL[type];
          const row = w * bpp;
          // desktop bytes read as pixels of this type: long matches, many across rows
          const src = generateImage("desktop", 128, 64).subarray(0, row * h);
          codec.input(src.length).bytes.set(src);
          const stream = encodeLz(codec, { type, width: w, height: h, stride: row, topDown }).slice();
          const packed = decodeLz(codec, stream).pixels.slice(); // rows in stream order
          for (const topFirst of [0, 1]) {
            const stride = row + 1 + ((w + h) % 7);
            const inOff = codec.load(stream);
            const out = codec.output(stride * h + 64);
            const view = () => codec.view(out.offset, stride * h + 64);
            view().fill(0xee);
            const n = x.lzDecode(inOff, stream.length, out.offset, stride * (h - 1) + row, stride, topFirst);
            expect(n, `${type} ${w}x${h}`).toBe(stream.length);
            const got = view();
            for (let y = 0; y < h; y++) {
              const from = topFirst && !topDown ? h - 1 - y : y;
              const what = `${type} ${w}x${h} topDown=${topDown} topFirst=${topFirst} row ${y}`;
              expect(Buffer.from(got.subarray(y * stride, y * stride + row)).equals(Buffer.from(packed.subarray(from * row, (from + 1) * row))), what).toBe(true);
              const gap = got.subarray(y * stride + row, (y + 1) * stride);
              expect(gap.every((b) => b === 0xee), `${what}: the gap after the row`).toBe(true);
            }
          }
        }
      }
    }
  });

  it("lzDecode of an alpha-only (xxxa) stream at a padded stride clears the colour bytes of its rows only", () => {
    const codec = new CodecInstance();
    const x = codec.exports as LzExports;
    const w = 37, h = 11, row = w * 4, stride = row + 12;
    const px = picture("desktop", w, h, 77);
    const input = codec.load(px);
    const bound = x.lzEncodeBound(10, w, h, row);
    const out = codec.output(bound);
    const len = x.lzEncode(10, w, h, row, 1, input, out.offset, out.capacity);
    expect(len).toBeGreaterThan(28);
    const stream = codec.view(out.offset, len).slice();
    const inOff = codec.load(stream);
    const dst = codec.exports.alloc(stride * h);
    codec.view(dst, stride * h).fill(0xee);
    expect(x.lzDecode(inOff, stream.length, dst, stride * (h - 1) + row, stride, 1)).toBe(stream.length);
    const got = codec.view(dst, stride * h);
    for (let y = 0; y < h; y++) {
      for (let i = 0; i < stride; i++) {
        const b = got[y * stride + i];
        const want = i >= row ? 0xee : i % 4 === 3 ? px[y * row + i] : 0;
        if (b !== want) expect.fail(`row ${y} byte ${i}: ${b}, want ${want}`);
      }
    }
  });
});
