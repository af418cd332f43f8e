// The codec policy: spice-server's image_compression modes (dcc.cpp get_compression_for_bitmap and
// dcc_compress_image), limited to what the viewer decodes, and the graduality score behind the auto modes.
import { describe, it, expect } from "vitest";
import { chooseCodec, gradualityOf, type Graduality } from "../agent/src/display/codec-policy.js";
import { gradualityScore } from "../agent/src/codec/graduality.js";
import { CodecInstance } from "../agent/src/codec/instance.js";
import { rng } from "./helpers/vectors.js";
import { generateImage } from "../bench/test-images.js";
import type { CodecPolicy, ImageCompression, RectCodec } from "../agent/src/display/types.js";

const everything = { codecs: ["raw", "quic", "lz", "glz"] as RectCodec[], glzWindowPixels: 3145728 };
/** spice-html5: QUIC and LZ, and a GLZ window of 0. */
const html5 = { codecs: ["raw", "quic", "lz"] as RectCodec[], glzWindowPixels: 0 };

function pick(compression: ImageCompression, width: number, height: number, graduality: Graduality, decoder = everything): RectCodec {
  const policy: CodecPolicy = { compression, decoder };
  return chooseCodec(policy, { width, height, graduality: () => graduality });
}

/** spice-bitmap-utils' graduality score written out plainly, the reference for the module's. */
function referenceScore(px: Uint8Array, width: number, height: number, stride: number): number {
  const pair = (p: number, q: number): number => {
    const d = [0, 1, 2].map((c) => Math.abs(px[p + c] - px[q + c]));
    if (d.every((v) => v === 0)) return 0.5;
    return d.some((v) => v >= 60) ? 1 : -0.25;
  };
  let sum = 0;
  let samples = 0;
  for (let i = width >> 1; i < width * height; i += 15) {
    const y = Math.floor(i / width);
    const x = i % width;
    if (x + 1 >= width || y + 1 >= height) continue;
    const p = y * stride + x * 4;
    const s = [pair(p, p + 4), pair(p, p + stride), pair(p, p + stride + 4)];
    sum += s.every((v) => v === 0.5) ? 0 : s[0] + s[1] + s[2];
    samples++;
  }
  return samples === 0 ? 0 : sum / (3 * samples);
}

/** The module's score of `px` (rows of `stride` bytes), copied into a fresh instance. */
function moduleScore(px: Uint8Array, width: number, height: number, stride: number): number {
  const codec = new CodecInstance();
  return gradualityScore(codec, codec.load(px), width, height, stride);
}

describe("codec policy", () => {
  const score = (kind: "desktop" | "photo" | "noise") => moduleScore(generateImage(kind, 1920, 1080), 1920, 1080, 1920 * 4);
  it("scores the test images as spice-bitmap-utils would (desktop LOW, photo HIGH, noise LOW)", () => {
    expect(gradualityOf(score("desktop"))).toBe("low");
    expect(score("photo")).toBeCloseTo(-0.25, 1);
    expect(gradualityOf(score("photo"))).toBe("high");
    expect(gradualityOf(score("noise"))).toBe("low");
  });

  it("the module's graduality score equals the plain one on seeded images, sizes and strides", () => {
    const r = rng(42);
    for (let n = 0; n < 60; n++) {
      const width = 1 + (r() % 90), height = 1 + (r() % 40), stride = width * 4 + (r() % 3) * 4;
      const px = new Uint8Array(stride * height);
      const flat = r() % 3; // 0: random, 1: flat areas, 2: gentle gradients
      for (let i = 0; i < px.length; i++) px[i] = flat === 0 ? r() & 255 : flat === 1 ? ((i >> 6) & 1) * 200 : (i >> 2) % 251 + (r() & 3);
      expect(moduleScore(px, width, height, stride), `image ${n} (${width}x${height}/${stride})`).toBeCloseTo(referenceScore(px, width, height, stride), 12);
    }
    const photo = generateImage("photo", 640, 360);
    expect(moduleScore(photo, 640, 360, 2560)).toBeCloseTo(referenceScore(photo, 640, 360, 2560), 12);
  });

  it("auto_glz and auto_lz: QUIC for photo-like rects, else GLZ (LZ past the window) or LZ", () => {
    expect(pick("auto_glz", 100, 100, "high")).toBe("quic");
    expect(pick("auto_glz", 100, 100, "medium")).toBe("glz");
    expect(pick("auto_glz", 100, 100, "low")).toBe("glz");
    expect(pick("auto_glz", 100, 100, "low", { ...everything, glzWindowPixels: 5000 })).toBe("lz");
    expect(pick("auto_glz", 100, 50, "low", { ...everything, glzWindowPixels: 5000 })).toBe("lz"); // spice needs fewer pixels than the window
    expect(pick("auto_glz", 100, 49, "low", { ...everything, glzWindowPixels: 5000 })).toBe("glz");
    expect(pick("auto_lz", 100, 100, "high")).toBe("quic");
    expect(pick("auto_lz", 100, 100, "low")).toBe("lz");
    expect(pick("auto_glz", 2, 100, "high")).toBe("glz"); // too narrow for QUIC
  });

  it("quic, glz, lz and off as spice-server means them", () => {
    expect(pick("quic", 100, 100, "low")).toBe("quic");
    expect(pick("quic", 100, 2, "low")).toBe("raw"); // smaller than 3x3: spice sends it uncompressed
    expect(pick("glz", 100, 100, "high")).toBe("glz");
    expect(pick("glz", 4000, 1000, "low")).toBe("lz"); // larger than the window
    expect(pick("lz", 100, 100, "high")).toBe("lz");
    expect(pick("off", 100, 100, "high")).toBe("raw");
  });

  it("rects under 54 bytes are raw in every mode", () => {
    for (const mode of ["auto_glz", "auto_lz", "quic", "glz", "lz", "off"] as const) {
      expect(pick(mode, 3, 4, "high")).toBe("raw"); // 48 bytes
      expect(pick(mode, 1, 13, "high")).toBe("raw"); // 52 bytes
    }
    expect(pick("lz", 1, 14, "low")).toBe("lz"); // 56 bytes
  });

  it("never sends a viewer what it cannot decode: GLZ falls back to LZ, LZ to raw", () => {
    for (const mode of ["auto_glz", "glz"] as const) {
      expect(pick(mode, 100, 100, "low", html5)).toBe("lz"); // spice-html5 asks for a window of 0
      expect(pick(mode, 100, 100, "low", { codecs: ["raw", "glz"], glzWindowPixels: 0 })).toBe("raw");
    }
    expect(pick("auto_glz", 100, 100, "high", { codecs: ["raw", "lz", "glz"], glzWindowPixels: 1 << 20 })).toBe("glz"); // no QUIC
    expect(pick("quic", 100, 100, "high", { codecs: ["raw", "lz"], glzWindowPixels: 0 })).toBe("raw");
    expect(pick("lz", 100, 100, "low", { codecs: ["raw"], glzWindowPixels: 0 })).toBe("raw");
  });

  it("computes the graduality only when an auto mode needs it", () => {
    let calls = 0;
    const graduality = (): Graduality => (calls++, "high");
    for (const compression of ["glz", "lz", "quic", "off"] as const) chooseCodec({ compression, decoder: everything }, { width: 50, height: 50, graduality });
    chooseCodec({ compression: "auto_glz", decoder: { codecs: ["raw", "lz"], glzWindowPixels: 0 } }, { width: 50, height: 50, graduality }); // QUIC not decodable
    expect(calls).toBe(0);
    chooseCodec({ compression: "auto_lz", decoder: everything }, { width: 50, height: 50, graduality });
    expect(calls).toBe(1);
  });
});
