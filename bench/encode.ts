// qumra bench encode: encode/decode throughput and size of the WASM SPICE codecs on the standard test
// images (NOTES §8) or PNG files, against two native yardsticks measured in the same run on the same
// pixels: node's zlib (deflateRawSync level 1) and LZ4 (lz4-napi, sync API). MB/s counts the raw 32-bpp
// input (10^6 bytes per second), as in NOTES §9; every figure is the median of `runs` timed calls.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { deflateRawSync, inflateRawSync } from "node:zlib";
import { DEFAULT_GLZ_WINDOW, GlzDecoder, GlzEncoder } from "../agent/src/codec/glz.js";
import type { ImageDesc } from "../agent/src/codec/image.js";
import { CodecInstance } from "../agent/src/codec/instance.js";
import { decodeLz, encodeLz } from "../agent/src/codec/lz.js";
import { decodePng } from "../agent/src/codec/png.js";
import { decodeQuic, encodeQuic } from "../agent/src/codec/quic.js";
import { generateImage, type TestImageKind } from "./test-images.js";
import { median, round, type Progress } from "./stats.js";

export const BENCH_CODECS = ["quic", "lz", "glz", "zlib", "lz4"] as const;
export type BenchCodec = (typeof BENCH_CODECS)[number];
export const STANDARD_IMAGES: readonly TestImageKind[] = ["desktop", "photo", "noise"];

export interface EncodeBenchOptions {
  codecs: BenchCodec[];
  /** "desktop", "photo", "noise" (generated at width × height) or paths of PNG files (their own size). */
  images: string[];
  width: number;
  height: number;
  runs: number;
}

export interface EncodeBenchRow {
  image: string;
  codec: BenchCodec;
  /** GLZ only: a first image into a fresh encoder, then into the same window the same image again, or new content. */
  variant?: GlzVariant;
  label: string;
  width: number;
  height: number;
  windowPixels?: number;
  inputBytes: number;
  outputBytes: number;
  ratio: number;
  encodeMBps: number;
  decodeMBps: number;
  /** This row's MB/s divided by the yardstick's, measured on the same image in the same run. */
  encodeVsZlib: number;
  decodeVsZlib: number;
  encodeVsLz4: number;
  decodeVsLz4: number;
  zlibEncodeMBps: number;
  zlibDecodeMBps: number;
  lz4EncodeMBps: number;
  lz4DecodeMBps: number;
  /** GLZ only: its encode time over LZ's on the same image in the same run (LZ is always measured with GLZ). */
  encodeTimeVsLz?: number;
  runs: number;
  /** The decoded pixels equal the input (for the SPICE codecs: ignoring the rgb32 pad byte). */
  verified: boolean;
}

interface Image {
  name: string;
  width: number;
  height: number;
  bgrx: Uint8Array;
}

type GlzVariant = "first" | "repeated" | "other";

/** One thing to measure. `encode` returns its stream and the time of the measured call only. */
interface Subject {
  codec: BenchCodec;
  variant?: GlzVariant;
  label: string;
  windowPixels?: number;
  /** Compare only B,G,R (the SPICE codecs treat byte 3 of rgb32 as padding). */
  ignorePad: boolean;
  encode(): { ms: number; stream: Uint8Array };
  decode(stream: Uint8Array): { ms: number; pixels: Uint8Array };
}

interface Measured {
  subject: Subject;
  outputBytes: number;
  encodeMBps: number;
  decodeMBps: number;
  verified: boolean;
}

type Lz4 = typeof import("lz4-napi");

/** lz4-napi is a devDependency: load it only when this benchmark runs, with a clear message if absent. */
function loadLz4(): Lz4 {
  try {
    return createRequire(import.meta.url)("lz4-napi") as Lz4;
  } catch (e) {
    throw new Error(`bench encode needs the lz4-napi package (a devDependency; npm install): ${(e as Error).message}`);
  }
}

function time<T>(work: () => T): { ms: number; value: T } {
  const started = performance.now();
  const value = work();
  return { ms: performance.now() - started, value };
}

export function loadImage(spec: string, width: number, height: number): Image {
  if ((STANDARD_IMAGES as readonly string[]).includes(spec)) {
    return { name: spec, width, height, bgrx: generateImage(spec as TestImageKind, width, height) };
  }
  if (!spec.toLowerCase().endsWith(".png")) throw new Error(`--image ${spec}: expected ${STANDARD_IMAGES.join(", ")} or a .png file`);
  let data: Uint8Array;
  try {
    data = readFileSync(spec);
  } catch (e) {
    throw new Error(`--image ${spec}: ${(e as Error).message}`);
  }
  try {
    const png = decodePng(data);
    return { name: path.basename(spec), width: png.width, height: png.height, bgrx: png.bgrx };
  } catch (e) {
    throw new Error(`--image ${spec}: ${(e as Error).message}`);
  }
}

/** QUIC or LZ: pixels written once into the encoder's input region, encoded in place every run. */
function oneShot(codec: "quic" | "lz", image: Image): Subject {
  const desc: ImageDesc = { type: "rgb32", width: image.width, height: image.height, stride: image.width * 4 };
  const encoder = new CodecInstance();
  encoder.input(image.bgrx.length).bytes.set(image.bgrx);
  const decoder = new CodecInstance(); // separate: decoding loads the stream into its input region
  const enc = codec === "quic" ? encodeQuic : encodeLz;
  const dec = codec === "quic" ? decodeQuic : decodeLz;
  return {
    codec,
    label: `${codec} rgb32`,
    ignorePad: true,
    encode: () => {
      const r = time(() => enc(encoder, desc));
      return { ms: r.ms, stream: r.value.slice() };
    },
    decode: (stream) => {
      const r = time(() => dec(decoder, stream).pixels);
      return { ms: r.ms, pixels: r.value };
    },
  };
}

/** The image mirrored left to right: new content of the same kind, for GLZ's "other" variant. */
function mirrored(image: Image): Uint8Array {
  const src = new Uint32Array(image.bgrx.buffer, image.bgrx.byteOffset, image.width * image.height);
  const out = new Uint32Array(src.length);
  for (let y = 0; y < image.height; y++) {
    const row = y * image.width;
    for (let x = 0; x < image.width; x++) out[row + x] = src[row + image.width - 1 - x];
  }
  return new Uint8Array(out.buffer);
}

/**
 * GLZ. "first": the image into a freshly initialised encoder (and decoder). "repeated": the same image
 * again after it was encoded once, and "other": the image after its mirror image was, both with a
 * window of two frames so that the earlier one is still in it (a display stream's later frames).
 */
function glz(variant: GlzVariant, image: Image): Subject {
  const desc: ImageDesc = { type: "rgb32", width: image.width, height: image.height, stride: image.width * 4 };
  const pixels = image.width * image.height;
  const windowPixels = Math.max(DEFAULT_GLZ_WINDOW, variant === "first" ? pixels : 2 * pixels);
  const encoder = new GlzEncoder({ windowPixels });
  const decoder = new GlzDecoder({ windowPixels });
  const before = variant === "repeated" ? image.bgrx : variant === "other" ? mirrored(image) : undefined;
  let first = new Uint8Array(0);
  const labels: Record<GlzVariant, string> = {
    first: `glz first image (window ${windowPixels} px)`,
    repeated: `glz same image again (window ${windowPixels} px ≥ 2 frames)`,
    other: `glz after its mirror image (window ${windowPixels} px ≥ 2 frames)`,
  };
  return {
    codec: "glz",
    variant,
    label: labels[variant],
    windowPixels,
    ignorePad: true,
    encode: () => {
      // Re-initialising resets the dictionary: a fresh encoder without reallocating its window.
      encoder.codec.exports.glzInit(windowPixels);
      if (before) {
        encoder.input(desc).bytes.set(before);
        first = encoder.encode(desc).slice();
      }
      // Like the LZ and QUIC runs, the pixels are in place before the clock starts: written where
      // the encoder keeps the image in its window (input(desc)), as a caller with a fresh frame does.
      encoder.input(desc).bytes.set(image.bgrx);
      const r = time(() => encoder.encode(desc));
      return { ms: r.ms, stream: r.value.slice() };
    },
    decode: (stream) => {
      decoder.codec.exports.glzDecoderInit(windowPixels);
      if (before) decoder.decode(first);
      const r = time(() => decoder.decode(stream).pixels);
      return { ms: r.ms, pixels: r.value };
    },
  };
}

function zlib(image: Image): Subject {
  const input = Buffer.from(image.bgrx.buffer, image.bgrx.byteOffset, image.bgrx.byteLength);
  return {
    codec: "zlib",
    label: "zlib deflateRaw level 1 (node, native)",
    ignorePad: false,
    encode: () => {
      const r = time(() => deflateRawSync(input, { level: 1 }));
      return { ms: r.ms, stream: r.value };
    },
    decode: (stream) => {
      const r = time(() => inflateRawSync(stream));
      return { ms: r.ms, pixels: r.value };
    },
  };
}

function lz4(image: Image, lib: Lz4): Subject {
  const input = Buffer.from(image.bgrx.buffer, image.bgrx.byteOffset, image.bgrx.byteLength);
  return {
    codec: "lz4",
    label: "lz4 (lz4-napi, native)",
    ignorePad: false,
    encode: () => {
      const r = time(() => lib.compressSync(input));
      return { ms: r.ms, stream: r.value };
    },
    decode: (stream) => {
      const r = time(() => lib.uncompressSync(stream));
      return { ms: r.ms, pixels: r.value };
    },
  };
}

function samePixels(a: Uint8Array, b: Uint8Array, ignorePad: boolean): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(ignorePad && (i & 3) === 3)) return false;
  }
  return true;
}

/**
 * Measures the subjects of one image round-robin: each round runs every subject once, so a change in
 * machine load (this is a shared 2-vCPU VM) hits the codecs and their yardsticks alike. Round 0 is an
 * untimed warm-up (JIT and WASM tier-up, page faults) and the correctness check.
 */
function measureAll(subjects: Subject[], image: Image, runs: number, step: () => void): Measured[] {
  const encodeMs = subjects.map((): number[] => []);
  const decodeMs = subjects.map((): number[] => []);
  const streams: Uint8Array[] = [];
  const verified: boolean[] = [];
  for (let round = 0; round <= runs; round++) {
    subjects.forEach((subject, i) => {
      const e = subject.encode();
      const d = subject.decode(e.stream);
      streams[i] = e.stream;
      if (round === 0) {
        verified[i] = samePixels(d.pixels, image.bgrx, subject.ignorePad);
      } else {
        encodeMs[i].push(e.ms);
        decodeMs[i].push(d.ms);
      }
      step();
    });
  }
  const mb = image.bgrx.length / 1e6;
  return subjects.map((subject, i) => ({
    subject,
    outputBytes: streams[i].length,
    encodeMBps: mb / (median(encodeMs[i]) / 1000),
    decodeMBps: mb / (median(decodeMs[i]) / 1000),
    verified: verified[i],
  }));
}

function subjectsFor(codecs: BenchCodec[], image: Image): Subject[] {
  const list: Subject[] = [];
  for (const codec of codecs) {
    if (codec === "quic" || codec === "lz") list.push(oneShot(codec, image));
    else if (codec === "glz") list.push(glz("first", image), glz("repeated", image), glz("other", image));
  }
  return list;
}

export function runEncodeBench(options: EncodeBenchOptions, progress: Progress): EncodeBenchRow[] {
  const lib = loadLz4();
  const codecs = [...new Set(options.codecs)];
  // GLZ's target is stated against LZ's time, so LZ is measured with it (and shown only if asked for)
  const measured = codecs.includes("glz") && !codecs.includes("lz") ? ["lz" as const, ...codecs] : codecs;
  const images = options.images.map((spec) => loadImage(spec, options.width, options.height));
  const perImage = 2 + measured.filter((c) => c === "quic" || c === "lz").length + (measured.includes("glz") ? 3 : 0);
  progress.start(images.length * perImage * (options.runs + 1), "encode");
  const rows: EncodeBenchRow[] = [];
  for (const image of images) {
    // Subjects (and their WASM instances) live for one image only. Yardsticks are always measured (the
    // ratios need them); they get rows of their own when asked for.
    const subjects = [zlib(image), lz4(image, lib), ...subjectsFor(measured, image)];
    const [zlibResult, lz4Result, ...results] = measureAll(subjects, image, options.runs, () => progress.increment());
    const lzResult = results.find((m) => m.subject.codec === "lz");
    const shown = [
      ...results.filter((m) => codecs.includes(m.subject.codec)),
      ...(codecs.includes("zlib") ? [zlibResult] : []),
      ...(codecs.includes("lz4") ? [lz4Result] : []),
    ];
    for (const m of shown) {
      rows.push({
        image: image.name,
        codec: m.subject.codec,
        ...(m.subject.variant ? { variant: m.subject.variant } : {}),
        label: m.subject.label,
        width: image.width,
        height: image.height,
        ...(m.subject.windowPixels ? { windowPixels: m.subject.windowPixels } : {}),
        inputBytes: image.bgrx.length,
        outputBytes: m.outputBytes,
        ratio: round(image.bgrx.length / m.outputBytes, 2),
        encodeMBps: round(m.encodeMBps, 1),
        decodeMBps: round(m.decodeMBps, 1),
        encodeVsZlib: round(m.encodeMBps / zlibResult.encodeMBps, 2),
        decodeVsZlib: round(m.decodeMBps / zlibResult.decodeMBps, 2),
        encodeVsLz4: round(m.encodeMBps / lz4Result.encodeMBps, 3),
        decodeVsLz4: round(m.decodeMBps / lz4Result.decodeMBps, 3),
        zlibEncodeMBps: round(zlibResult.encodeMBps, 1),
        zlibDecodeMBps: round(zlibResult.decodeMBps, 1),
        lz4EncodeMBps: round(lz4Result.encodeMBps, 1),
        lz4DecodeMBps: round(lz4Result.decodeMBps, 1),
        ...(m.subject.codec === "glz" && lzResult ? { encodeTimeVsLz: round(lzResult.encodeMBps / m.encodeMBps, 2) } : {}),
        runs: options.runs,
        verified: m.verified,
      });
    }
  }
  progress.stop();
  return rows;
}
