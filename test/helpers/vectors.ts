// The shared SPICE reference vectors (../shared/spice/vectors) and a seeded generator for test content.
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ImageType } from "../../agent/src/codec/image.js";
import { xorshift32 } from "../../agent/src/codec/testimages.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const vectorsDir = path.resolve(repoRoot, "../shared/spice/vectors");

/** One QUIC or LZ entry of vectors.json. */
export interface Vector {
  codec: string;
  type: ImageType;
  width: number;
  height: number;
  stride: number;
  input: string;
  output: string;
  topDown: boolean;
}

/** Deterministic xorshift32 stream (seed 0 is taken as 1). */
export function rng(seed: number): () => number {
  return xorshift32(seed >>> 0 || 1);
}
