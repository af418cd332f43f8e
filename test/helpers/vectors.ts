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

// Fuzz mutations of a valid LZ/GLZ stream whose header is `headerBytes` long. Each draws from `r` in a
// fixed order, so a seeded fuzz loop sees the same streams on every run.

/** The stream cut short at a random length. */
export function truncated(r: () => number, base: Uint8Array): Uint8Array {
  return base.slice(0, r() % base.length);
}

/** The stream with 1-4 flipped bits, mostly in the body, one in eight in the header. */
export function bitFlipped(r: () => number, base: Uint8Array, headerBytes: number): Uint8Array {
  const data = base.slice();
  const flips = 1 + (r() % 4);
  for (let f = 0; f < flips; f++) {
    const at = r() % 8 === 0 ? r() % headerBytes : headerBytes + (r() % Math.max(1, data.length - headerBytes));
    if (at < data.length) data[at] ^= 1 << (r() % 8);
  }
  return data;
}

/** The stream's valid header followed by up to 399 random bytes. */
export function randomBody(r: () => number, base: Uint8Array, headerBytes: number): Uint8Array {
  const data = new Uint8Array(headerBytes + (r() % 400));
  data.set(base.subarray(0, headerBytes));
  for (let j = headerBytes; j < data.length; j++) data[j] = r() & 255;
  return data;
}
