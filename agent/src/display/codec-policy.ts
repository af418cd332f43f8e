// Which codec a rectangle gets: spice-server's image_compression modes (dcc.cpp), applied to what the
// viewer says it can decode. The graduality score is spice-bitmap-utils' "is this photo-like" test.
import type { CodecPolicy, RectCodec } from "./types.js";

export type Graduality = "high" | "medium" | "low";

/** spice-server sends bitmaps of fewer than 54 bytes (height × stride) raw. */
export const RAW_BELOW_BYTES = 54;
const SAMPLE_JUMP = 15;
const DIFF_THRESHOLD = 60;

/**
 * spice-bitmap-utils' graduality score of a 32-bit B,G,R,X image: every 15th pixel (starting at
 * width/2 of row 0, running on across rows) is compared with its right, lower and lower-right
 * neighbours; identical pairs score +0.5 (a sample whose three pairs are identical scores 0), a channel
 * difference ≥ 60 scores +1, anything else −0.25; the mean over 3 × samples is the score.
 * Samples without right or lower neighbours are skipped.
 */
export function gradualityScore(pixels: Uint8Array, offset: number, width: number, height: number, stride: number): number {
  let sum = 0;
  let samples = 0;
  const total = width * height;
  for (let i = width >> 1; i < total; i += SAMPLE_JUMP) {
    const y = Math.floor(i / width);
    const x = i - y * width;
    if (x + 1 >= width || y + 1 >= height) continue;
    const p = offset + y * stride + x * 4;
    const right = p + 4;
    const below = p + stride;
    const belowRight = below + 4;
    const a = pairScore(pixels, p, right);
    const b = pairScore(pixels, p, below);
    const c = pairScore(pixels, p, belowRight);
    sum += a === 0.5 && b === 0.5 && c === 0.5 ? 0 : a + b + c;
    samples++;
  }
  return samples === 0 ? 0 : sum / (3 * samples);
}

function pairScore(px: Uint8Array, p: number, q: number): number {
  const db = Math.abs(px[p] - px[q]);
  const dg = Math.abs(px[p + 1] - px[q + 1]);
  const dr = Math.abs(px[p + 2] - px[q + 2]);
  if (db === 0 && dg === 0 && dr === 0) return 0.5;
  if (db >= DIFF_THRESHOLD || dg >= DIFF_THRESHOLD || dr >= DIFF_THRESHOLD) return 1;
  return -0.25;
}

export function gradualityOf(score: number): Graduality {
  return score < -0.03 ? "high" : score < 0.002 ? "medium" : "low";
}

export interface PolicyInput {
  width: number;
  height: number;
  /** Computes the graduality only when the policy needs it (the auto modes). */
  graduality: () => Graduality;
}

/** spice-server's smallest side for QUIC (MIN_DIMENSION_TO_QUIC). */
const MIN_QUIC_SIDE = 3;

/**
 * The codec for one rect, as spice-server's get_compression_for_bitmap and dcc_compress_image decide
 * it for `policy.compression`, limited to what the viewer decodes:
 * - under 54 bytes, or `off`: raw;
 * - `quic`: QUIC if the rect is at least 3x3 (and the viewer decodes it), else raw;
 * - `auto_glz` / `auto_lz`: QUIC for photo-like rects (graduality HIGH), else GLZ / LZ;
 * - `glz`: GLZ while the rect is smaller than the viewer's GLZ window, else LZ;
 * - `lz`: LZ.
 * A codec the viewer cannot decode falls back as spice-server falls back when that codec fails:
 * GLZ → LZ → raw. (Our LZ and GLZ take a stride, so spice's "no extra stride" rule does not apply.)
 */
export function chooseCodec(policy: CodecPolicy, r: PolicyInput): RectCodec {
  if (policy.compression === "off" || r.height * r.width * 4 < RAW_BELOW_BYTES) return "raw";
  const decodes = (c: RectCodec): boolean => policy.decoder.codecs.includes(c);
  const quicUsable = decodes("quic") && r.width >= MIN_QUIC_SIDE && r.height >= MIN_QUIC_SIDE;
  const lz: RectCodec = decodes("lz") ? "lz" : "raw";
  const glzUsable = decodes("glz") && r.width * r.height < policy.decoder.glzWindowPixels;
  switch (policy.compression) {
    case "quic":
      return quicUsable ? "quic" : "raw";
    case "lz":
      return lz;
    case "glz":
      return glzUsable ? "glz" : lz;
    case "auto_lz":
    case "auto_glz":
      if (quicUsable && r.graduality() === "high") return "quic";
      return policy.compression === "auto_glz" && glzUsable ? "glz" : lz;
  }
}
