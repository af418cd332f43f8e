// The codec policy: spice-server's image_compression modes (dcc.cpp get_compression_for_bitmap and
// dcc_compress_image), limited to what the viewer decodes, and the graduality score behind the auto modes.
import { describe, it, expect } from "vitest";
import { chooseCodec, gradualityOf, gradualityScore, type Graduality } from "../agent/src/display/codec-policy.js";
import { generateImage } from "../bench/test-images.js";
import type { CodecPolicy, ImageCompression, RectCodec } from "../agent/src/display/types.js";

const everything = { codecs: ["raw", "quic", "lz", "glz"] as RectCodec[], glzWindowPixels: 3145728 };
/** spice-html5: QUIC and LZ, and a GLZ window of 0. */
const html5 = { codecs: ["raw", "quic", "lz"] as RectCodec[], glzWindowPixels: 0 };

function pick(compression: ImageCompression, width: number, height: number, graduality: Graduality, decoder = everything): RectCodec {
  const policy: CodecPolicy = { compression, decoder };
  return chooseCodec(policy, { width, height, graduality: () => graduality });
}

describe("codec policy", () => {
  const score = (kind: "desktop" | "photo" | "noise") => gradualityScore(generateImage(kind, 1920, 1080), 0, 1920, 1080, 1920 * 4);
  it("scores the test images as spice-bitmap-utils would (desktop LOW, photo HIGH, noise LOW)", () => {
    expect(gradualityOf(score("desktop"))).toBe("low");
    expect(score("photo")).toBeCloseTo(-0.25, 1);
    expect(gradualityOf(score("photo"))).toBe("high");
    expect(gradualityOf(score("noise"))).toBe("low");
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
