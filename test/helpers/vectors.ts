// The SPICE reference vectors (test/vectors: encodings made by spice-common's and spice-server's own
// encoders, packed in files.br) and a seeded generator for test content.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { brotliDecompressSync } from "node:zlib";
import type { ImageType } from "../../agent/src/codec/image.js";
import { xorshift32 } from "../../bench/test-images.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const vectorsDir = path.join(repoRoot, "test", "vectors");

/** One QUIC or LZ entry of vectors.json. */
export interface Vector {
  codec: "quic" | "lz";
  type: ImageType;
  width: number;
  height: number;
  stride: number;
  input: string;
  output: string;
  topDown: boolean;
}

/** One GLZ entry: three images coded in order by one encoder with one dictionary. */
export interface GlzVector {
  codec: "glz";
  type: "rgb32";
  width: number;
  height: number;
  stride: number;
  windowPixels: number;
  topDown: boolean;
  inputs: string[];
  outputs: string[];
}

/** Every entry of vectors.json. */
export function vectorIndex(): (Vector | GlzVector)[] {
  return JSON.parse(readFileSync(path.join(vectorsDir, "vectors.json"), "utf8")) as (Vector | GlzVector)[];
}

export function vectorsOf(codec: "quic" | "lz"): Vector[];
export function vectorsOf(codec: "glz"): GlzVector[];
export function vectorsOf(codec: string): (Vector | GlzVector)[] {
  return vectorIndex().filter((v) => v.codec === codec);
}

let unpacked: Map<string, Uint8Array> | undefined;

/** The files of the pack, each checked against its SHA-256 in files.json (unpacked once per process). */
function files(): Map<string, Uint8Array> {
  if (unpacked) return unpacked;
  const list = JSON.parse(readFileSync(path.join(vectorsDir, "files.json"), "utf8")) as { name: string; bytes: number; sha256: string }[];
  const all = brotliDecompressSync(readFileSync(path.join(vectorsDir, "files.br")));
  const map = new Map<string, Uint8Array>();
  let at = 0;
  for (const f of list) {
    const data = new Uint8Array(all.buffer, all.byteOffset + at, f.bytes);
    const sha = createHash("sha256").update(data).digest("hex");
    if (sha !== f.sha256) throw new Error(`test/vectors/files.br: ${f.name} has SHA-256 ${sha}, files.json says ${f.sha256}`);
    map.set(f.name, data);
    at += f.bytes;
  }
  if (at !== all.length) throw new Error(`test/vectors/files.br holds ${all.length} bytes, files.json lists ${at}`);
  return (unpacked = map);
}

/** A vector file's bytes (a fresh copy, so a test may change it). */
export function vectorFile(name: string): Uint8Array {
  const data = files().get(name);
  if (!data) throw new Error(`no vector file '${name}' in test/vectors/files.json`);
  return data.slice();
}

/** Writes every vector file (and vectors.json) into `dir`, for tests that hand files to the CLI. */
export function extractVectors(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of files()) writeFileSync(path.join(dir, name), data);
  writeFileSync(path.join(dir, "vectors.json"), readFileSync(path.join(vectorsDir, "vectors.json")));
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
