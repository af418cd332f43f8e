// LZ codec: byte-exact against spice-common's encoder (test/vectors), round trips on generated
// images of every type and many sizes, and hostile streams.
import { describe, it, expect, beforeAll } from "vitest";
import { execSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { CodecInstance } from "../agent/src/codec/instance.js";
import { BYTES_PER_PIXEL, CodecError, type ImageDesc, type ImageType } from "../agent/src/codec/image.js";
import { decodeLz, encodeLz, readLzHeader } from "../agent/src/codec/lz.js";
import { generateImage } from "../bench/test-images.js";
import { bitFlipped, randomBody, rng, truncated, repoRoot as root, vectorFile, vectorsOf } from "./helpers/vectors.js";



function ensureWasm(): void {
  if (!existsSync(path.join(root, "dist/wasm/codecs.wasm"))) {
    execSync("npx asc --config asconfig.json --target release", { cwd: root, stdio: "inherit" });
  }
}


type Kind = "flat" | "gradient" | "desktop" | "photo" | "noise";

/** A BGRX image of a kind; the pad byte is left random to check that codecs ignore it. */
function bgrx(kind: Kind, width: number, height: number, seed = 1): Uint8Array {
  let img: Uint8Array;
  if (kind === "desktop" || kind === "photo" || kind === "noise") {
    img = generateImage(kind, width, height);
  } else {
    img = new Uint8Array(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const o = (y * width + x) * 4;
        if (kind === "flat") {
          img[o] = 0x40; img[o + 1] = 0x80; img[o + 2] = 0xc0;
        } else {
          img[o] = (x * 255) / Math.max(1, width - 1);
          img[o + 1] = (y * 255) / Math.max(1, height - 1);
          img[o + 2] = ((x + y) >> 2) & 255;
        }
      }
    }
  }
  const r = rng(seed);
  for (let i = 3; i < img.length; i += 4) img[i] = r() & 255;
  return img;
}

/** Converts BGRX pixels to another layout (packed rows). */
function convert(src: Uint8Array, type: ImageType, width: number, height: number): Uint8Array {
  const n = width * height;
  const bpp = BYTES_PER_PIXEL[type];
  const out = new Uint8Array(n * bpp);
  for (let i = 0; i < n; i++) {
    const b = src[i * 4], g = src[i * 4 + 1], r = src[i * 4 + 2];
    switch (type) {
      case "rgb32": out.set([b, g, r, src[i * 4 + 3]], i * 4); break;
      case "rgba": out.set([b, g, r, r >= 128 ? 255 : g & 0xf0], i * 4); break;
      case "rgb24": out.set([b, g, r], i * 3); break;
      case "rgb16": {
        const v = ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3);
        out[i * 2] = v & 255;
        out[i * 2 + 1] = v >> 8;
        break;
      }
      default: out[i] = ((r >> 5) << 5) | ((g >> 5) << 2) | (b >> 6);
    }
  }
  return out;
}

/** What a decoder must give back: the input with the rgb32 pad byte cleared. */
function expected(pixels: Uint8Array, type: ImageType): Uint8Array {
  if (type !== "rgb32") return pixels;
  const e = pixels.slice();
  for (let i = 3; i < e.length; i += 4) e[i] = 0;
  return e;
}

function encodePacked(codec: CodecInstance, desc: ImageDesc, pixels: Uint8Array): Uint8Array {
  codec.input(pixels.length).bytes.set(pixels);
  return encodeLz(codec, desc).slice();
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

describe("LZ codec", () => {
  let codec: CodecInstance;
  beforeAll(() => {
    ensureWasm();
    codec = new CodecInstance();
  });

  const vectors = vectorsOf("lz");

  it("has the LZ reference vectors", () => {
    expect(vectors.length).toBeGreaterThanOrEqual(45);
  });

  for (const v of vectors) {
    it(`vector ${v.output}: encodes byte for byte and decodes back`, () => {
      const input = vectorFile(v.input);
      const want = vectorFile(v.output);
      const desc: ImageDesc = { type: v.type, width: v.width, height: v.height, stride: v.stride, topDown: v.topDown };
      const got = encodePacked(codec, desc, input);
      expect(got.length).toBe(want.length);
      expect(same(got, want)).toBe(true);
      const dec = decodeLz(codec, want);
      expect(dec.desc).toEqual({ ...desc, stride: v.width * BYTES_PER_PIXEL[v.type] });
      expect(same(dec.pixels, expected(input, v.type))).toBe(true);
    });
  }

  const sizes: [number, number][] = [
    [1, 1], [2, 1], [3, 1], [1, 3], [4, 1], [2, 2], [5, 2], [7, 3], [8, 1], [17, 9], [64, 64], [97, 61],
    [255, 3], [333, 77], [640, 480],
  ];
  const kinds: Kind[] = ["flat", "gradient", "desktop", "photo", "noise"];
  const types: ImageType[] = ["rgb32", "rgba", "rgb24", "rgb16", "plt8"];

  for (const type of types) {
    it(`round-trips ${type} images of many sizes and kinds`, () => {
      let seed = 7;
      for (const [w, h] of sizes) {
        for (const kind of kinds) {
          const pixels = convert(bgrx(kind, w, h, seed++), type, w, h);
          const desc: ImageDesc = { type, width: w, height: h, stride: w * BYTES_PER_PIXEL[type] };
          const stream = encodePacked(codec, desc, pixels);
          const dec = decodeLz(codec, stream);
          expect(dec.desc.width).toBe(w);
          expect(same(dec.pixels, expected(pixels, type)), `${type} ${kind} ${w}x${h}`).toBe(true);
        }
      }
    });
  }

  it("codes a strided image exactly like the packed one", () => {
    for (const type of types) {
      for (const [w, h] of [[1, 1], [33, 7], [301, 40]] as [number, number][]) {
        const packed = convert(bgrx("desktop", w, h, 3), type, w, h);
        const row = w * BYTES_PER_PIXEL[type];
        const stride = row + 13;
        const strided = new Uint8Array(stride * h).fill(0xa5);
        for (let y = 0; y < h; y++) strided.set(packed.subarray(y * row, (y + 1) * row), y * stride);
        const a = encodePacked(codec, { type, width: w, height: h, stride: row }, packed);
        const b = encodePacked(codec, { type, width: w, height: h, stride, topDown: true }, strided);
        expect(same(a, b), `${type} ${w}x${h}`).toBe(true);
        expect(same(decodeLz(codec, b).pixels, expected(packed, type))).toBe(true);
      }
    }
  });

  it("encodes in place from a caller-chosen input offset and keeps the top-down flag", () => {
    const w = 50, h = 20;
    const px = bgrx("desktop", w, h);
    const { offset, bytes } = codec.input(px.length + 64);
    bytes.set(px, 64);
    const s = encodeLz(codec, { type: "rgb32", width: w, height: h, stride: w * 4, topDown: false }, offset + 64).slice();
    const hdr = readLzHeader(codec, s);
    expect(hdr).toMatchObject({ lzType: 8, width: w, height: h, stride: w * 4, topDown: false });
    expect(same(decodeLz(codec, s).pixels, expected(px, "rgb32"))).toBe(true);
  });

  it("round-trips large frames (1920x1080 desktop and photo, 4096x2160 desktop)", () => {
    for (const [kind, w, h] of [["desktop", 1920, 1080], ["photo", 1920, 1080], ["desktop", 4096, 2160]] as [Kind, number, number][]) {
      const px = generateImage(kind as "desktop", w, h);
      const desc: ImageDesc = { type: "rgb32", width: w, height: h, stride: w * 4 };
      const s = encodePacked(codec, desc, px);
      if (kind === "desktop") expect(s.length).toBeLessThan(px.length / 10);
      expect(same(decodeLz(codec, s).pixels, px)).toBe(true);
    }
  });

  it("rejects what LZ cannot encode", () => {
    expect(() => encodeLz(codec, { type: "gray", width: 4, height: 4, stride: 4 })).toThrow(CodecError);
    expect(() => encodeLz(codec, { type: "rgb32", width: 4, height: 4, stride: 8 })).toThrow(CodecError);
    expect(() => encodeLz(codec, { type: "rgb32", width: 0, height: 4, stride: 0 })).toThrow(CodecError);
  });

  it("survives truncated, bit-flipped and random streams (seeded fuzz)", () => {
    const r = rng(0x5eed1234);
    const seeds: Uint8Array[] = [];
    for (const type of types) {
      for (const [kind, w, h] of [["desktop", 40, 30], ["photo", 23, 11], ["flat", 9, 9], ["noise", 5, 3]] as [Kind, number, number][]) {
        seeds.push(encodePacked(codec, { type, width: w, height: h, stride: w * BYTES_PER_PIXEL[type] }, convert(bgrx(kind, w, h), type, w, h)));
      }
    }
    let decoded = 0, rejected = 0;
    for (let i = 0; i < 2000; i++) {
      const base = seeds[r() % seeds.length];
      let data: Uint8Array;
      const mode = i % 4;
      if (mode === 0) {
        data = truncated(r, base);
      } else if (mode === 1) {
        data = bitFlipped(r, base, 28);
      } else if (mode === 2) {
        data = randomBody(r, base, 28);
      } else {
        data = new Uint8Array(r() % 200);
        for (let j = 0; j < data.length; j++) data[j] = r() & 255;
        if (data.length >= 8 && r() % 2) data.set([0x20, 0x20, 0x5a, 0x4c, 0, 1, 0, 1]);
      }
      try {
        const out = decodeLz(codec, data);
        expect(out.pixels.length).toBe(out.desc.stride * out.desc.height);
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
