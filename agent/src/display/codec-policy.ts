// Which codec a rectangle gets: spice-server's image_compression modes (dcc.cpp), applied to what the
// viewer says it can decode.
import type { CodecPolicy, RectCodec } from "./types.js";

export type Graduality = "high" | "medium" | "low";

/** spice-server sends bitmaps of fewer than 54 bytes (height × stride) raw. */
export const RAW_BELOW_BYTES = 54;

/** spice-bitmap-utils' levels of its graduality score (the score: codec/graduality.ts). */
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
