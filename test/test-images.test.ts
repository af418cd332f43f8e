// The benchmarks' generated images are the same bytes everywhere: their SHA-256s at 1920x1080 are the
// ones the reference images of the codec benchmarks were published with.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateImage } from "../bench/test-images.js";

const SHA256 = {
  desktop: "6ffdea821696685292b117c3259bded8472ab13af5396a76039885c98c5b9fac",
  photo: "0a8c4b8d3d661a91063cb00845e62bd61f716fe612721811bc242879f770817f",
  noise: "02905424d267868a88f121b4824818c90a6cd29c139b595f46a5e55ec5e31c5a",
} as const;

describe("generated test images", () => {
  for (const [kind, sha] of Object.entries(SHA256) as [keyof typeof SHA256, string][]) {
    it(`${kind} 1920x1080 has its fixed SHA-256`, () => {
      expect(createHash("sha256").update(generateImage(kind, 1920, 1080)).digest("hex")).toBe(sha);
    });
  }
});
