// qumra codec encode|decode: the SPICE codecs on raw files (layouts as in test/vectors/README.md).
// Runs locally: no agent is contacted, --host is ignored.
import { readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { BYTES_PER_PIXEL, IMAGE_TYPES, type ImageDesc, type ImageType } from "../codec/image.js";
import { CodecInstance } from "../codec/instance.js";
import { DEFAULT_GLZ_WINDOW, GlzDecoder, GlzEncoder, decodeGlz, encodeGlz } from "../codec/glz.js";
import { decodeLz, encodeLz } from "../codec/lz.js";
import { decodeQuic, encodeQuicPixels } from "../codec/quic.js";
import type { GlobalOptions } from "./connection.js";
import { toJson } from "./fan-out.js";
import { collect, parseIntIn } from "./parse.js";

const CODECS = ["quic", "lz", "glz"] as const;
type CodecName = (typeof CODECS)[number];

/** Image types each codec carries (QUIC has no palette; LZ has no gray; GLZ is 32-bit only). */
const SUPPORTED: Record<CodecName, readonly ImageType[]> = {
  quic: ["rgb32", "rgba", "rgb24", "rgb16", "gray"],
  lz: ["rgb32", "rgba", "rgb24", "rgb16", "plt8"],
  glz: ["rgb32", "rgba"],
};

interface RawFlags {
  codec: string;
  type: string;
  width: string;
  height: string;
  stride?: string;
  in: string[];
  out: string;
  window: string;
}

interface Job {
  codec: CodecName;
  desc: ImageDesc;
  /** Bytes of one raw image as laid out in files: stride × height. */
  rawBytes: number;
  inputs: string[];
  out: string;
  windowPixels: number;
}

interface FileResult {
  in: string;
  out: string;
  inputBytes: number;
  outputBytes: number;
  ms: number;
}

function oneOf<T extends string>(value: string, flag: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new Error(`${flag} ${value}: expected one of ${allowed.join(", ")}`);
  return value as T;
}

/** Validates the flags shared by encode and decode; every message names the flag at fault. */
function jobOf(f: RawFlags): Job {
  const codec = oneOf(f.codec, "--codec", CODECS);
  const type = oneOf(f.type, "--type", IMAGE_TYPES);
  if (!SUPPORTED[codec].includes(type)) {
    throw new Error(`--type ${type}: ${codec} does not support ${type} images (it takes ${SUPPORTED[codec].join(", ")})`);
  }
  const width = parseIntIn(f.width, "--width", 1, 65535);
  const height = parseIntIn(f.height, "--height", 1, 65535);
  const rowBytes = width * BYTES_PER_PIXEL[type];
  const stride = f.stride === undefined ? rowBytes : parseIntIn(f.stride, "--stride", rowBytes, 1 << 20);
  if (f.in.length > 1 && codec !== "glz") throw new Error(`--in: only glz takes several input files (got ${f.in.length} for ${codec})`);
  const windowPixels = parseIntIn(f.window, "--window", 1, 1 << 25);
  return { codec, desc: { type, width, height, stride, topDown: true }, rawBytes: stride * height, inputs: f.in, out: f.out, windowPixels };
}

function read(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`--in ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
}

/** GLZ writes OUT.0, OUT.1, … (one stream per image); QUIC and LZ write OUT itself. */
function outputName(job: Job, index: number): string {
  return job.codec === "glz" ? `${job.out}.${index}` : job.out;
}

function timed<T>(work: () => T): { value: T; ms: number } {
  const started = performance.now();
  const value = work();
  return { value, ms: performance.now() - started };
}

function encodeFiles(job: Job): FileResult[] {
  const { desc } = job;
  const glz = job.codec === "glz" ? new GlzEncoder({ windowPixels: job.windowPixels }) : undefined;
  const codec = glz?.codec ?? new CodecInstance();
  return job.inputs.map((file, i) => {
    const raw = read(file);
    // Accept stride × height, or the same without the last row's padding.
    const minimal = desc.stride * (desc.height - 1) + desc.width * BYTES_PER_PIXEL[desc.type];
    if (raw.length !== job.rawBytes && raw.length !== minimal) {
      throw new Error(`--in ${file}: ${raw.length} bytes do not match --width ${desc.width} --height ${desc.height} --stride ${desc.stride} ` +
        `for ${desc.type} (expected ${job.rawBytes} bytes)`);
    }
    const { value, ms } = timed(() => {
      if (job.codec === "quic") return encodeQuicPixels(codec, desc, raw);
      // the pixels go straight into the codec's memory (for GLZ, into the window where possible)
      if (!glz) {
        codec.input(raw.length).bytes.set(raw);
        return encodeLz(codec, desc);
      }
      glz.input(desc).bytes.set(raw.subarray(0, minimal));
      return encodeGlz(glz, desc);
    });
    const out = outputName(job, i);
    writeFileSync(out, value);
    return { in: file, out, inputBytes: raw.length, outputBytes: value.length, ms };
  });
}

function decodeFiles(job: Job): FileResult[] {
  const glz = job.codec === "glz" ? new GlzDecoder({ windowPixels: job.windowPixels }) : undefined;
  const codec = new CodecInstance();
  return job.inputs.map((file, i) => {
    const data = read(file);
    const { value, ms } = timed(() => {
      try {
        if (glz) return decodeGlz(glz, data);
        return job.codec === "quic" ? decodeQuic(codec, data) : decodeLz(codec, data);
      } catch (e) {
        throw new Error(`--in ${file}: cannot decode as ${job.codec}: ${(e as Error).message}`);
      }
    });
    const got = value.desc;
    if (got.type !== job.desc.type) throw new Error(`--type ${job.desc.type}: --in ${file} holds an image of type ${got.type}`);
    if (got.width !== job.desc.width) throw new Error(`--width ${job.desc.width}: --in ${file} holds an image ${got.width} pixels wide`);
    if (got.height !== job.desc.height) throw new Error(`--height ${job.desc.height}: --in ${file} holds an image ${got.height} pixels high`);
    const pixels = restride(value.pixels, got.stride, job.desc.stride, job.desc.height);
    const out = outputName(job, i);
    writeFileSync(out, pixels);
    return { in: file, out, inputBytes: data.length, outputBytes: pixels.length, ms };
  });
}

/** Copies packed rows into rows `stride` apart (the padding is zero). */
function restride(packed: Uint8Array, rowBytes: number, stride: number, height: number): Uint8Array {
  if (stride === rowBytes) return packed.slice(0, rowBytes * height);
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) out.set(packed.subarray(y * rowBytes, (y + 1) * rowBytes), y * stride);
  return out;
}

function report(globals: GlobalOptions, verb: "encode" | "decode", job: Job, files: FileResult[]): void {
  const sum = (k: "inputBytes" | "outputBytes" | "ms"): number => files.reduce((n, f) => n + f[k], 0);
  const rawBytes = verb === "encode" ? sum("inputBytes") : sum("outputBytes");
  const codedBytes = verb === "encode" ? sum("outputBytes") : sum("inputBytes");
  const ratio = Math.round((rawBytes / codedBytes) * 100) / 100;
  const ms = Math.round(sum("ms") * 1000) / 1000;
  const { type, width, height, stride } = job.desc;
  if (globals.json) {
    console.log(toJson({ verb, codec: job.codec, type, width, height, stride, inputBytes: sum("inputBytes"), outputBytes: sum("outputBytes"), ratio, ms, files }));
    return;
  }
  for (const f of files) console.log(`${f.in} → ${f.out}: ${f.inputBytes} → ${f.outputBytes} bytes in ${f.ms.toFixed(2)} ms`);
  console.log(`${verb} ${job.codec} ${type} ${width}x${height}: ratio ${ratio}:1, ${ms} ms`);
}

function addFlags(cmd: Command, inHelp: string, outHelp: string): Command {
  return cmd
    .requiredOption("--codec <codec>", `codec: ${CODECS.join(", ")}`)
    .requiredOption("--type <type>", `pixel layout: ${IMAGE_TYPES.join(", ")}`)
    .requiredOption("--width <pixels>", "image width")
    .requiredOption("--height <pixels>", "image height")
    .option("--stride <bytes>", "bytes per row of the raw image (default: width × bytes per pixel)")
    .requiredOption("--in <file>", inHelp, collect)
    .requiredOption("--out <file>", outHelp)
    .option("--window <pixels>", "glz dictionary window in pixels", String(DEFAULT_GLZ_WINDOW));
}

export function registerCodec(program: Command, globals: () => GlobalOptions): Command {
  const codec = program.command("codec").description("encode or decode raw images with the SPICE codecs (local, no agent)");

  addFlags(codec.command("encode").description("encode raw pixels (glz: several --in, one dictionary, outputs OUT.0, OUT.1, …)"),
    "raw pixel file (repeatable for glz)", "encoded file (glz: prefix of OUT.N)")
    .action((f: RawFlags) => {
      const options = globals();
      const job = jobOf(f);
      report(options, "encode", job, encodeFiles(job));
    });

  addFlags(codec.command("decode").description("decode to raw pixels (glz: several --in in encoding order, outputs OUT.0, OUT.1, …)"),
    "encoded file (repeatable for glz, in encoding order)", "raw pixel file (glz: prefix of OUT.N)")
    .action((f: RawFlags) => {
      const options = globals();
      const job = jobOf(f);
      report(options, "decode", job, decodeFiles(job));
    });

  return codec;
}
