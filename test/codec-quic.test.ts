// QUIC codec: byte-exactness against spice-common's encoder (test/vectors), lossless round trips on
// generated images of every type, and a seeded fuzz of hostile streams.
import { execSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { BYTES_PER_PIXEL, CodecError, type ImageDesc, type ImageType } from "../agent/src/codec/image.js";
import { CodecInstance } from "../agent/src/codec/instance.js";
import { decodeQuic, encodeQuic, encodeQuicPixels } from "../agent/src/codec/quic.js";
import { generateImage } from "../bench/test-images.js";
import { rng, truncated, repoRoot as root, vectorFile, vectorsOf } from "./helpers/vectors.js";

const wasmFile = path.join(root, "dist/wasm/codecs.wasm");

beforeAll(() => {
  // Build the module if it is missing or older than its sources (`npm test` builds it first anyway).
  const srcDir = path.join(root, "wasm/assembly");
  const newest = Math.max(...readdirSync(srcDir).map((f) => statSync(path.join(srcDir, f)).mtimeMs));
  if (!existsSync(wasmFile) || statSync(wasmFile).mtimeMs < newest) {
    execSync("npx asc --config asconfig.json --target release", { cwd: root, stdio: "inherit" });
  }
}, 120_000);


/** Bytes of a pixel that carry data (rgb32 padding and rgb16's top bit do not). */
function significant(type: ImageType, byteInPixel: number): number {
  if (type === "rgb32" && byteInPixel === 3) return 0;
  if (type === "rgb16" && byteInPixel === 1) return 0x7f;
  return 0xff;
}

/** Compares decoded (tightly packed, top-down) pixels with the source image; returns the first difference. */
function firstDifference(desc: ImageDesc, source: Uint8Array, decoded: Uint8Array): string | undefined {
  const bpp = BYTES_PER_PIXEL[desc.type];
  const rowBytes = desc.width * bpp;
  for (let y = 0; y < desc.height; y++) {
    const srcRow = desc.topDown === false ? desc.height - 1 - y : y;
    for (let i = 0; i < rowBytes; i++) {
      const m = significant(desc.type, i % bpp);
      const want = source[srcRow * desc.stride + i] & m;
      const got = decoded[y * rowBytes + i];
      if (desc.type === "rgb32" && i % 4 === 3) {
        if (got !== 0) return `pad byte at (${i / bpp | 0}, ${y}) is ${got}`;
        continue;
      }
      if ((got & m) !== want || (got & ~m & 0xff) !== 0) return `pixel (${(i / bpp) | 0}, ${y}) byte ${i % bpp}: ${got} != ${want}`;
    }
  }
  return undefined;
}


const vectors = vectorsOf("quic");

describe("QUIC vectors (spice-common quic.c output)", () => {
  it("has vectors to check", () => {
    expect(vectors.length).toBeGreaterThan(0);
  });

  for (const v of vectors) {
    it(`${v.output}: encodes byte for byte and decodes back`, () => {
      const codec = new CodecInstance();
      const input = vectorFile(v.input);
      const expected = vectorFile(v.output);
      const desc: ImageDesc = { type: v.type, width: v.width, height: v.height, stride: v.stride, topDown: v.topDown };
      // Pixels written straight into the input region, as the display pipeline does.
      codec.input(input.length).bytes.set(input);
      const encoded = encodeQuic(codec, desc);
      expect(encoded.length).toBe(expected.length);
      expect(Buffer.from(encoded).equals(Buffer.from(expected))).toBe(true);

      const { desc: got, pixels } = decodeQuic(codec, expected);
      expect(got).toMatchObject({ type: v.type, width: v.width, height: v.height });
      expect(firstDifference(desc, input, pixels)).toBeUndefined();
    });
  }
});

type Content = "flat" | "gradient" | "text" | "photo" | "random" | "desktop";

/** A `width`×`height` image of `type` with `stride` ≥ row bytes; bytes past each row are random junk. */
function makeImage(type: ImageType, content: Content, width: number, height: number, stride: number, seed: number): Uint8Array {
  const bpp = BYTES_PER_PIXEL[type];
  const r = rng(seed);
  const img = new Uint8Array(stride * height);
  for (let i = 0; i < img.length; i++) img[i] = r() & 0xff;
  // BGRX source for this content, then converted to the layout.
  let bgrx: Uint8Array;
  if (content === "photo" || content === "desktop") {
    bgrx = generateImage(content, width, height);
  } else {
    bgrx = new Uint8Array(width * height * 4);
    const flat = [r() & 255, r() & 255, r() & 255, r() & 255];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const o = (y * width + x) * 4;
        for (let c = 0; c < 4; c++) {
          let v: number;
          if (content === "flat") v = flat[c];
          else if (content === "gradient") v = (x * (c + 1) + y * (3 - c) + (x * y >> 6)) & 255;
          else if (content === "text") v = ((x >> 2) + (y >> 3)) % 5 === 0 && (r() & 3) !== 0 ? 0 : c === 3 ? 255 : 230;
          else v = r() & 255;
          bgrx[o + c] = v;
        }
      }
    }
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 4;
      const d = y * stride + x * bpp;
      const [b, g, rr, a] = [bgrx[s], bgrx[s + 1], bgrx[s + 2], bgrx[s + 3]];
      switch (type) {
        case "rgb32":
          img[d] = b; img[d + 1] = g; img[d + 2] = rr; // padding keeps its junk: the encoder must ignore it
          break;
        case "rgba":
          img[d] = b; img[d + 1] = g; img[d + 2] = rr; img[d + 3] = content === "photo" ? (x + y) & 255 : a;
          break;
        case "rgb24":
          img[d] = b; img[d + 1] = g; img[d + 2] = rr;
          break;
        case "rgb16": {
          const v = (b >> 3) | ((g >> 3) << 5) | ((rr >> 3) << 10) | (img[d + 1] & 0x80) << 8;
          img[d] = v & 255; img[d + 1] = v >> 8;
          break;
        }
        case "gray":
          img[d] = g;
          break;
      }
    }
  }
  return img;
}

const TYPES: ImageType[] = ["rgb32", "rgba", "rgb24", "rgb16", "gray"];

describe("QUIC round trips", () => {
  const sizes: [number, number][] = [[1, 1], [2, 1], [1, 2], [3, 3], [4, 4], [5, 7], [17, 3], [63, 64], [64, 63], [129, 65], [333, 41], [2049, 3], [2500, 2], [1, 300]];
  const contents: Content[] = ["flat", "gradient", "text", "photo", "random"];
  let seed = 1;
  for (const type of TYPES) {
    it(`${type}: every size and content, tight and padded strides, top-down and bottom-up`, () => {
      const codec = new CodecInstance();
      for (const [w, h] of sizes) {
        for (const content of contents) {
          const bpp = BYTES_PER_PIXEL[type];
          const padded = (seed & 1) === 1;
          const stride = w * bpp + (padded ? 1 + (seed % 13) : 0);
          const topDown = seed % 3 !== 0;
          const img = makeImage(type, content, w, h, stride, seed++);
          const desc: ImageDesc = { type, width: w, height: h, stride, topDown };
          const encoded = encodeQuicPixels(codec, desc, img);
          expect(encoded.length % 4).toBe(0);
          const copy = encoded.slice();
          const { desc: got, pixels } = decodeQuic(codec, copy);
          expect(got).toMatchObject({ type, width: w, height: h, stride: w * bpp });
          const diff = firstDifference(desc, img, pixels);
          if (diff) throw new Error(`${type} ${content} ${w}x${h} stride ${stride} topDown ${topDown}: ${diff}`);
        }
      }
    });
  }

  it("is deterministic: the same image encodes to the same bytes on a reused instance", () => {
    const codec = new CodecInstance();
    const img = makeImage("rgba", "photo", 97, 41, 97 * 4, 7);
    const desc: ImageDesc = { type: "rgba", width: 97, height: 41, stride: 97 * 4 };
    const a = encodeQuicPixels(codec, desc, img).slice();
    encodeQuicPixels(codec, { type: "gray", width: 10, height: 10, stride: 10 }, new Uint8Array(100).fill(3));
    const b = encodeQuicPixels(codec, desc, img).slice();
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it("large frames: 1920x1080 desktop/photo/noise rgb32 and 4096x2160 desktop", () => {
    const codec = new CodecInstance();
    const cases: [("desktop" | "photo" | "noise"), number, number, number?][] = [
      ["desktop", 1920, 1080, 1_074_704],
      ["photo", 1920, 1080, 3_471_064],
      ["noise", 1920, 1080, 6_222_508],
      ["desktop", 4096, 2160],
    ];
    for (const [kind, w, h, size] of cases) {
      const img = generateImage(kind, w, h);
      const desc: ImageDesc = { type: "rgb32", width: w, height: h, stride: w * 4 };
      codec.input(img.length).bytes.set(img);
      const encoded = encodeQuic(codec, desc);
      // Sizes that spice-common's encoder produced for the same images (NOTES.md §9).
      if (size !== undefined) expect(encoded.length).toBe(size);
      const { pixels } = decodeQuic(codec, encoded.slice());
      expect(firstDifference(desc, img, pixels)).toBeUndefined();
    }
  }, 60_000);

  it("encodes at an input offset, and reports a too-small output or bad descriptions as CodecError", () => {
    const codec = new CodecInstance();
    const img = makeImage("rgb24", "gradient", 31, 9, 31 * 3, 3);
    const offset = codec.exports.alloc(img.length);
    codec.view(offset, img.length).set(img);
    const desc: ImageDesc = { type: "rgb24", width: 31, height: 9, stride: 93 };
    const a = encodeQuic(codec, desc, offset).slice();
    const b = encodeQuicPixels(codec, desc, img).slice();
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(() => encodeQuicPixels(codec, { type: "plt8", width: 4, height: 4, stride: 4 }, new Uint8Array(16))).toThrow(CodecError);
    expect(() => encodeQuicPixels(codec, { type: "rgb32", width: 4, height: 4, stride: 8 }, new Uint8Array(64))).toThrow(CodecError);
    expect(() => encodeQuicPixels(codec, { type: "rgb32", width: 4, height: 4, stride: 16 }, new Uint8Array(10))).toThrow(CodecError);
    expect(() => decodeQuic(codec, new Uint8Array(10))).toThrow(CodecError);
    expect(() => decodeQuic(codec, new Uint8Array(64))).toThrow(/bad magic/);
  });
});

describe("QUIC decoder on hostile input", () => {
  it("survives 2000 truncated, bit-flipped and random streams (seeded)", () => {
    const codec = new CodecInstance();
    const r = rng(0x5eed1234);
    // Valid streams to mutate: every type, a few contents and sizes.
    const bases: Uint8Array[] = [];
    for (const type of TYPES) {
      for (const [content, w, h] of [["photo", 23, 17], ["text", 64, 12], ["gradient", 7, 40], ["random", 5, 5]] as [Content, number, number][]) {
        const bpp = BYTES_PER_PIXEL[type];
        bases.push(encodeQuicPixels(codec, { type, width: w, height: h, stride: w * bpp }, makeImage(type, content, w, h, w * bpp, r())).slice());
      }
    }
    let errors = 0;
    let decoded = 0;
    for (let n = 0; n < 2000; n++) {
      const base = bases[r() % bases.length];
      let data: Uint8Array;
      const kind = n % 5;
      if (kind === 0) {
        data = truncated(r, base);
      } else if (kind === 1 || kind === 2) {
        data = base.slice(); // a few flipped bits, anywhere (header included)
        const flips = 1 + (r() % (kind === 1 ? 3 : 40));
        for (let f = 0; f < flips; f++) {
          const bit = r() % (data.length * 8);
          data[bit >> 3] ^= 1 << (bit & 7);
        }
      } else if (kind === 3) {
        data = base.slice(); // valid header, random body
        for (let i = 20; i < data.length; i++) data[i] = r() & 255;
        if (r() & 1) data = data.slice(0, 20 + (r() % (data.length - 19)));
      } else {
        data = new Uint8Array(r() % 200); // random bytes, sometimes with a valid magic
        for (let i = 0; i < data.length; i++) data[i] = r() & 255;
        if (data.length >= 20 && (r() & 1)) {
          new DataView(data.buffer).setUint32(0, 0x43495551, true);
          new DataView(data.buffer).setUint32(4, 0, true);
          new DataView(data.buffer).setUint32(8, 1 + (r() % 5), true);
          new DataView(data.buffer).setUint32(12, 1 + (r() % 300), true);
          new DataView(data.buffer).setUint32(16, 1 + (r() % 300), true);
        }
      }
      try {
        const { desc, pixels } = decodeQuic(codec, data);
        expect(pixels.length).toBe(desc.stride * desc.height);
        decoded++;
      } catch (e) {
        if (!(e instanceof CodecError)) throw new Error(`case ${n}: ${String(e)}`);
        errors++;
      }
    }
    expect(errors + decoded).toBe(2000);
    expect(errors).toBeGreaterThan(0);
  }, 60_000);
});
