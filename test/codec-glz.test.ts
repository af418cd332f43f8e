// GLZ codec: byte-exact against spice-server's encoder (test/vectors, one encoder per sequence),
// streams of frames through the shared window, eviction, and hostile streams.
import { describe, it, expect, beforeAll } from "vitest";
import { execSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { CodecError, type ImageDesc } from "../agent/src/codec/image.js";
import { GlzDecoder, GlzEncoder, decodeGlz, encodeGlz } from "../agent/src/codec/glz.js";
import { encodeLz, imageBytes } from "../agent/src/codec/lz.js";
import { CodecInstance } from "../agent/src/codec/instance.js";
import { generateImage } from "../bench/test-images.js";
import { bitFlipped, randomBody, rng, truncated, repoRoot as root, vectorFile, vectorsOf } from "./helpers/vectors.js";




function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/** rgb32 pixels as a decoder returns them (pad byte 0). */
function padless(px: Uint8Array): Uint8Array {
  const e = px.slice();
  for (let i = 3; i < e.length; i += 4) e[i] = 0;
  return e;
}

/** Writes the pixels where the encoder asks for them (its window when it can) and encodes them. */
function encode(enc: GlzEncoder, desc: ImageDesc, px: Uint8Array): Uint8Array {
  enc.input(desc).bytes.set(px.subarray(0, imageBytes(desc)));
  return encodeGlz(enc, desc).slice();
}

function rgb32(w: number, h: number): ImageDesc {
  return { type: "rgb32", width: w, height: h, stride: w * 4 };
}

/** A frame: the desktop image with a moving block of noise. */
function frame(base: Uint8Array, w: number, h: number, i: number): Uint8Array {
  const f = base.slice();
  const r = rng(1000 + i);
  const bx = (i * 37) % Math.max(1, w - 16), by = (i * 23) % Math.max(1, h - 16);
  for (let y = by; y < Math.min(h, by + 16); y++) {
    for (let x = bx; x < Math.min(w, bx + 16); x++) {
      const o = (y * w + x) * 4;
      f[o] = r() & 255; f[o + 1] = r() & 255; f[o + 2] = r() & 255;
    }
  }
  return f;
}

describe("GLZ codec", () => {
  beforeAll(() => {
    if (!existsSync(path.join(root, "dist/wasm/codecs.wasm"))) {
      execSync("npx asc --config asconfig.json --target release", { cwd: root, stdio: "inherit" });
    }
  });

  const vectors = vectorsOf("glz");

  it("has the GLZ reference vectors", () => {
    expect(vectors.length).toBeGreaterThanOrEqual(9);
  });

  for (const v of vectors) {
    it(`vector sequence ${v.outputs[0]} (${v.width}x${v.height}): one encoder, byte for byte, decoded in order`, () => {
      const enc = new GlzEncoder({ windowPixels: v.windowPixels });
      const dec = new GlzDecoder({ windowPixels: v.windowPixels });
      const desc: ImageDesc = { type: v.type, width: v.width, height: v.height, stride: v.stride, topDown: v.topDown };
      v.inputs.forEach((name, i) => {
        const input = vectorFile(name);
        const want = vectorFile(v.outputs[i]);
        expect(enc.nextImageId).toBe(i);
        const got = encode(enc, desc, input);
        expect(got.length).toBe(want.length);
        expect(same(got, want)).toBe(true);
        const out = decodeGlz(dec, want);
        expect(out.imageId).toBe(i);
        expect(out.desc).toEqual(desc);
        expect(same(out.pixels, padless(input))).toBe(true);
      });
    });
  }

  it("a stream of frames that repeat earlier content compresses to almost nothing", () => {
    const w = 640, h = 400;
    const enc = new GlzEncoder();
    const dec = new GlzDecoder();
    const photo = generateImage("photo", w, h);
    const first = encode(enc, rgb32(w, h), photo);
    expect(same(dec.decode(first).pixels, photo)).toBe(true);
    const noise = generateImage("noise", w, h);
    const frames = [photo, noise, photo, noise, photo];
    for (const f of frames.slice(1)) {
      const s = encode(enc, rgb32(w, h), f);
      expect(same(dec.decode(s).pixels, f)).toBe(true);
      // a repeat of a whole earlier frame
      if (f === photo || enc.nextImageId > 2) expect(s.length).toBeLessThan(f.length / 200);
    }
  });

  it("round-trips moving content, odd sizes, strides and a bottom-up flag", () => {
    const enc = new GlzEncoder();
    const dec = new GlzDecoder();
    const sizes: [number, number][] = [[1, 1], [2, 1], [3, 1], [4, 1], [5, 3], [31, 17], [257, 33], [300, 200]];
    const desktop = generateImage("desktop", 300, 200);
    let i = 0;
    for (const [w, h] of sizes) {
      for (let k = 0; k < 3; k++, i++) {
        const px = frame(desktop.subarray(0, w * h * 4), w, h, i);
        const stride = w * 4 + (i % 3) * 8;
        const buf = new Uint8Array(stride * h).fill(0x5a);
        for (let y = 0; y < h; y++) buf.set(px.subarray(y * w * 4, (y + 1) * w * 4), y * stride);
        const s = encode(enc, { type: "rgb32", width: w, height: h, stride, topDown: i % 2 === 0 }, buf);
        const out = dec.decode(s);
        expect(out.desc.topDown).toBe(i % 2 === 0);
        expect(same(out.pixels, padless(px)), `${w}x${h} #${i}`).toBe(true);
      }
    }
  });

  it("round-trips rgba images, referencing earlier ones", () => {
    const enc = new GlzEncoder();
    const dec = new GlzDecoder();
    const w = 120, h = 90;
    const base = generateImage("desktop", w, h);
    for (let i = 0; i < 4; i++) {
      const px = frame(base, w, h, i);
      for (let p = 0; p < w * h; p++) px[p * 4 + 3] = px[p * 4 + 2] >= 128 ? 255 : (p + i) & 0xf0;
      const s = encode(enc, { type: "rgba", width: w, height: h, stride: w * 4 }, px);
      if (i > 0) expect(s.length).toBeLessThan(px.length / 10);
      expect(same(dec.decode(s).pixels, px)).toBe(true);
    }
  });

  it("evicts old images as the window fills, and the decoder follows", () => {
    const windowPixels = 20000;
    const enc = new GlzEncoder({ windowPixels });
    const dec = new GlzDecoder({ windowPixels });
    const r = rng(99);
    const pool = [generateImage("photo", 100, 80), generateImage("desktop", 100, 80), generateImage("noise", 100, 80)];
    let maxImages = 0;
    for (let i = 0; i < 60; i++) {
      const w = 1 + (r() % 100), h = 1 + (r() % 80);
      const src = pool[r() % pool.length];
      const px = new Uint8Array(w * h * 4);
      for (let y = 0; y < h; y++) px.set(src.subarray(y * 400, y * 400 + w * 4), y * w * 4);
      const s = encode(enc, rgb32(w, h), px);
      maxImages = Math.max(maxImages, enc.windowImages);
      const out = dec.decode(s);
      expect(out.imageId).toBe(i);
      expect(same(out.pixels, px), `image ${i} ${w}x${h}`).toBe(true);
    }
    expect(maxImages).toBeGreaterThan(2);
  });

  // A hash entry outlives its image: once the image is evicted and its segment index reused, the
  // entry names a pixel of the new image, and spice-server matches against that pixel. (A,B,C) and
  // (X,Y,Z) hash alike; image 0 has (A,B,C) at pixel 2, the next to last image (which reuses image 0's
  // segment: the window holds two 16-pixel images) has (X,Y) there, and the last has (X,Y,Z): it
  // must code a reference to (X,Y). The expected streams were made by spice-server's GLZ encoder.
  // With 509 images between, the index has been reused 255 times, as often as the key table's tags
  // allow (see ENarrow in glz.ts). Pixels come from rng(5).
  const [A, B, C, X, Y, Z] = [0x154207, 0xe65b8d, 0x634f86, 0xfa651e, 0x6a48f2, 0xf82b48];
  const staleEntryCases: [string, number, string][] = [
    ["after one reuse", 1, "20205a4c000100011800000010000000010000004000000000000000030000000101cc35cb55fc264200010b482bf8c5313423909faebdedc29f5514e3176e6cdea74f278e1ca51498ada38c4dafebed"],
    ["after 255 reuses", 509, "20205a4c000100011800000010000000010000004000000000000001ff00000001019417f4f755d04200010b482bf8b1b3f032085edee6507b03eb198a01b82314294a0608112108ff079b303fadacad"],
  ];
  for (const [label, fillers, expected] of staleEntryCases) {
    it(`a hash entry of an evicted image names the image that reuses its segment, as in spice-server (${label})`, () => {
      const r = rng(5);
      const strip = (mid: number[]): Uint8Array => {
        const px = new Uint32Array(16);
        for (let i = 0; i < 16; i++) px[i] = r() & 0xffffff;
        mid.forEach((v, k) => (px[2 + k] = v));
        return new Uint8Array(px.buffer);
      };
      const images = [strip([A, B, C]), ...Array.from({ length: fillers }, () => strip([])), strip([X, Y]), strip([X, Y, Z])];
      const enc = new GlzEncoder({ windowPixels: 32 });
      const dec = new GlzDecoder({ windowPixels: 32 });
      let last = "";
      for (const px of images) {
        const s = encode(enc, rgb32(16, 1), px);
        expect(same(dec.decode(s).pixels, px)).toBe(true);
        last = Buffer.from(s).toString("hex");
      }
      expect(last).toBe(expected);
    });
  }

  it("keeps more than 128 images in the window (wide hash entries) and still round-trips", () => {
    const enc = new GlzEncoder({ windowPixels: 100000 });
    const dec = new GlzDecoder({ windowPixels: 100000 });
    const src = generateImage("desktop", 200, 200);
    const r = rng(4242);
    for (let i = 0; i < 400; i++) {
      const w = 4 + (r() % 12), h = 4 + (r() % 12);
      const x0 = r() % (200 - w), y0 = r() % (200 - h);
      const px = new Uint8Array(w * h * 4);
      for (let y = 0; y < h; y++) px.set(src.subarray(((y0 + y) * 200 + x0) * 4, ((y0 + y) * 200 + x0 + w) * 4), y * w * 4);
      const s = encode(enc, rgb32(w, h), px);
      expect(same(dec.decode(s).pixels, px), `image ${i}`).toBe(true);
    }
    expect(enc.windowImages).toBeGreaterThan(128);
  });

  it("1920x1080: a repeated frame fits a large window and becomes tiny; a full 4096x2160 desktop round-trips", () => {
    const w = 1920, h = 1080;
    const enc = new GlzEncoder({ windowPixels: 6290432 });
    const dec = new GlzDecoder({ windowPixels: 6290432 });
    const photo = generateImage("photo", w, h);
    const a = encode(enc, rgb32(w, h), photo);
    expect(same(dec.decode(a).pixels, photo)).toBe(true);
    const b = encode(enc, rgb32(w, h), photo);
    expect(b.length).toBeLessThan(20000);
    expect(same(dec.decode(b).pixels, photo)).toBe(true);

    const big = new GlzEncoder({ windowPixels: 4096 * 2160 });
    const bigDec = new GlzDecoder({ windowPixels: 4096 * 2160 });
    const desktop = generateImage("desktop", 4096, 2160);
    const s = encode(big, rgb32(4096, 2160), desktop);
    expect(same(bigDec.decode(s).pixels, desktop)).toBe(true);
  });

  it("codes pixels written into the window in place, with the bytes of a copied input", () => {
    const w = 160, h = 100;
    const inPlace = new GlzEncoder({ windowPixels: 40000 });
    const copied = new GlzEncoder({ windowPixels: 40000 });
    const base = generateImage("desktop", w, h);
    for (let i = 0; i < 8; i++) {
      const px = frame(base, w, h, i);
      const slot = inPlace.input(rgb32(w, h)).offset;
      expect(slot).toBe(inPlace.codec.exports.glzInputPtr(w * h));
      const a = encode(inPlace, rgb32(w, h), px);
      const region = copied.codec.input(px.length);
      region.bytes.set(px);
      const b = copied.encode(rgb32(w, h), region.offset).slice();
      expect(same(a, b), `frame ${i}`).toBe(true);
    }
  });

  it("hands out only free window space: writing there without encoding loses nothing", () => {
    const enc = new GlzEncoder({ windowPixels: 1000 });
    const dec = new GlzDecoder({ windowPixels: 1000 });
    const src = generateImage("desktop", 40, 40);
    const crop = (w: number, h: number) => {
      const px = new Uint8Array(w * h * 4);
      for (let y = 0; y < h; y++) px.set(src.subarray(y * 160, y * 160 + w * 4), y * w * 4);
      return px;
    };
    const check = (w: number, h: number) => {
      const px = crop(w, h);
      expect(same(dec.decode(encode(enc, rgb32(w, h), px)).pixels, padless(px))).toBe(true);
    };
    check(25, 20);
    check(25, 20);
    // free space past the window's images: scribbled on, then not encoded
    enc.input(rgb32(25, 20)).bytes.fill(0xee);
    check(25, 20);
    // the next 600 pixels would go where image 1, still in the window, lies: not handed out, so
    // such an image goes through the input region and is copied after image 1 has been dropped
    expect(enc.codec.exports.glzInputPtr(600)).toBe(0);
    expect(enc.input(rgb32(30, 20)).offset).toBe(enc.codec.input(30 * 20 * 4).offset);
    check(30, 20);
    check(30, 20);
  });

  it("rejects what it cannot encode", () => {
    const enc = new GlzEncoder({ windowPixels: 100 });
    expect(() => enc.encode({ type: "rgb24", width: 4, height: 4, stride: 12 })).toThrow(CodecError);
    expect(() => enc.encode(rgb32(20, 20))).toThrow(CodecError);
    expect(() => new GlzEncoder({ windowPixels: 0 })).toThrow(CodecError);
  });

  it("survives truncated, bit-flipped, reordered and random streams (seeded fuzz)", () => {
    const windowPixels = 65536;
    const enc = new GlzEncoder({ windowPixels });
    const w = 48, h = 32;
    const desktop = generateImage("desktop", w, h);
    const noise = generateImage("noise", w, h);
    const streams = [desktop, frame(desktop, w, h, 1), noise, frame(desktop, w, h, 2), desktop].map((px) => encode(enc, rgb32(w, h), px));
    // also an LZ stream: a decoder must reject it
    const lzCodec = new CodecInstance();
    lzCodec.input(desktop.length).bytes.set(desktop);
    const lz = encodeLz(lzCodec, rgb32(w, h)).slice();

    const dec = new GlzDecoder({ windowPixels });
    const r = rng(0xf00dfeed);
    let decoded = 0, rejected = 0;
    for (let i = 0; i < 2000; i++) {
      // a fresh window holding the first images, then one hostile image
      dec.codec.exports.glzDecoderInit(windowPixels);
      const prefix = 1 + (r() % 3);
      for (let k = 0; k < prefix; k++) dec.decode(streams[k]);
      const base = streams[prefix];
      let data: Uint8Array;
      const mode = i % 5;
      if (mode === 0) {
        data = truncated(r, base);
      } else if (mode === 1) {
        data = bitFlipped(r, base, 33);
      } else if (mode === 2) {
        data = randomBody(r, base, 33);
      } else if (mode === 3) {
        // an image out of order, or one referencing images the window does not hold
        data = streams[(prefix + 1 + (r() % 3)) % streams.length];
      } else {
        data = r() % 4 === 0 ? lz : new Uint8Array(r() % 200).map(() => r() & 255);
      }
      try {
        const out = dec.decode(data);
        expect(out.pixels.length).toBe(out.desc.width * out.desc.height * 4);
        decoded++;
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        rejected++;
      }
    }
    expect(decoded + rejected).toBe(2000);
    expect(rejected).toBeGreaterThan(1000);
  });
});
