// Which codec a rectangle gets: the viewer's choice, or for "auto" spice-server's rule
// (spice-server dcc.cpp get_compression_for_bitmap with image_compression=auto_glz):
// tiny bitmaps go raw; photo-like content (graduality HIGH) goes QUIC; the rest goes GLZ, or LZ when the
// rect is larger than the GLZ window.
import type { RectCodec, CodecChoice } from "./types.js";

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
  /** GLZ window of the viewer's encoder, in pixels. */
  glzWindowPixels: number;
  /** Computes the graduality only when the policy needs it (auto mode). */
  graduality: () => Graduality;
}

/** The codec for one rect under the viewer's choice. */
export function chooseCodec(choice: CodecChoice, r: PolicyInput): RectCodec {
  if (choice === "raw") return "raw";
  if (r.height * r.width * 4 < RAW_BELOW_BYTES) return "raw";
  const quicUsable = r.width >= 3 && r.height >= 3;
  const glzOrLz: RectCodec = r.width * r.height <= r.glzWindowPixels ? "glz" : "lz";
  switch (choice) {
    case "quic":
      return quicUsable ? "quic" : "lz";
    case "lz":
      return "lz";
    case "glz":
      return glzOrLz;
    case "auto":
      return quicUsable && r.graduality() === "high" ? "quic" : glzOrLz;
  }
}
