// qumra codec encode|decode and qumra bench encode through the built CLI (npm run build first), against
// the reference vectors (test/vectors, unpacked into a temp folder): byte-exact encodings, decodes back to
// the input pixels, clear errors.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import path from "node:path";
import { cleanup, repoRoot, runCli, tempDir } from "./helpers/agent.js";
import { encodePng } from "../agent/src/codec/png.js";
import { generateImage } from "../bench/test-images.js";
import { extractVectors, vectorIndex } from "./helpers/vectors.js";

/** A vectors.json entry of any codec (QUIC/LZ have input/output, GLZ inputs/outputs). */
interface Vector {
  codec: "quic" | "lz" | "glz";
  type: string;
  width: number;
  height: number;
  stride: number;
  input: string;
  output: string;
  inputs: string[];
  outputs: string[];
  windowPixels: number;
}

const vectors = vectorIndex() as unknown as Vector[];
let vectorsDir: string;
const vec = (file: string): string => path.join(vectorsDir, file);
const bytes = (file: string): Buffer => readFileSync(file);

function find(codec: string, type: string, input: string): Vector {
  const v = vectors.find((e) => e.codec === codec && e.type === type && (e.input ?? e.inputs[0]).startsWith(input));
  if (!v) throw new Error(`no ${codec} ${type} vector for ${input}`);
  return v;
}

function flags(v: Vector, extra: string[] = []): string[] {
  return ["--codec", v.codec, "--type", v.type, "--width", String(v.width), "--height", String(v.height), ...extra];
}

/** The CLI failed with a single line on stderr that mentions `pattern`. */
function expectClearError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines[0]).toMatch(pattern);
  expect(lines[0]).toMatch(/^qumra: /);
}

let dir: string;
beforeAll(() => {
  dir = tempDir("codec-cli");
  vectorsDir = path.join(dir, "vectors");
  extractVectors(vectorsDir);
});
afterAll(() => cleanup(dir));

describe("qumra codec encode", () => {
  it.each([
    ["quic", "rgb32", "text_320x200"],
    ["quic", "rgb16", "photo_160x120"],
    ["lz", "rgba", "grad_257x33"],
    ["lz", "plt8", "desktop_1024x768"],
  ])("%s %s of %s equals the reference bytes", async (codec, type, input) => {
    const v = find(codec, type, input);
    const out = path.join(dir, `${input}.${type}.${codec}`);
    const r = await runCli(["codec", "encode", ...flags(v, ["--in", vec(v.input), "--out", out])]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(bytes(out).equals(bytes(vec(v.output)))).toBe(true);
  });

  it("glz: a sequence through one encoder and one dictionary equals the reference streams", async () => {
    const v = vectors.filter((e) => e.codec === "glz")[2];
    const out = path.join(dir, "seq");
    const ins = v.inputs.flatMap((f) => ["--in", vec(f)]);
    const r = await runCli(["--json", "codec", "encode", ...flags(v, [...ins, "--out", out, "--window", String(v.windowPixels)])]);
    expect(r.code).toBe(0);
    v.outputs.forEach((ref, i) => expect(bytes(`${out}.${i}`).equals(bytes(vec(ref)))).toBe(true));
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ verb: "encode", codec: "glz", type: "rgb32", width: v.width, height: v.height });
    expect(summary.files).toHaveLength(3);
    expect(summary.outputBytes).toBe(v.outputs.reduce((n, f) => n + bytes(vec(f)).length, 0));
  });

  it("reads rows --stride bytes apart (same stream as the packed image)", async () => {
    const v = find("quic", "rgb24", "noise_97x61");
    const packed = bytes(vec(v.input));
    const stride = v.stride + 13;
    const padded = Buffer.alloc(stride * v.height, 0xee);
    for (let y = 0; y < v.height; y++) packed.copy(padded, y * stride, y * v.stride, (y + 1) * v.stride);
    writeFileSync(path.join(dir, "padded.raw"), padded);
    const out = path.join(dir, "padded.quic");
    const r = await runCli(["codec", "encode", ...flags(v, ["--stride", String(stride), "--in", path.join(dir, "padded.raw"), "--out", out])]);
    expect(r.code).toBe(0);
    expect(bytes(out).equals(bytes(vec(v.output)))).toBe(true);
  });

  it("--json prints sizes, ratio and time", async () => {
    const v = find("lz", "rgb32", "desktop_1024x768");
    const r = await runCli(["--json", "codec", "encode", ...flags(v, ["--in", vec(v.input), "--out", path.join(dir, "d.lz")])]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ verb: "encode", codec: "lz", inputBytes: v.stride * v.height, outputBytes: bytes(vec(v.output)).length });
    expect(s.ratio).toBeGreaterThan(1);
    expect(s.ms).toBeGreaterThan(0);
  });
});

describe("qumra codec decode", () => {
  it.each([
    ["quic", "rgb32", "photo_160x120"],
    ["quic", "gray", "text_320x200"],
    ["lz", "rgb24", "wide_2049x5"],
    ["lz", "rgb16", "tiny_3x2"],
  ])("%s %s of %s gives back the input pixels", async (codec, type, input) => {
    const v = find(codec, type, input);
    const out = path.join(dir, `${input}.${type}.${codec}.raw`);
    const r = await runCli(["codec", "decode", ...flags(v, ["--in", vec(v.output), "--out", out])]);
    expect(r.code).toBe(0);
    expect(bytes(out).equals(bytes(vec(v.input)))).toBe(true);
  });

  it("glz: the streams in order give back every image of the sequence", async () => {
    const v = vectors.filter((e) => e.codec === "glz")[1];
    const out = path.join(dir, "glzdec");
    const r = await runCli(["codec", "decode", ...flags(v, [...v.outputs.flatMap((f) => ["--in", vec(f)]), "--out", out])]);
    expect(r.code).toBe(0);
    v.inputs.forEach((input, i) => expect(bytes(`${out}.${i}`).equals(bytes(vec(input)))).toBe(true));
  });

  it("writes rows --stride bytes apart with zero padding", async () => {
    const v = find("lz", "rgba", "tiny_3x2");
    const out = path.join(dir, "strided.raw");
    const r = await runCli(["codec", "decode", ...flags(v, ["--stride", String(v.stride + 4), "--in", vec(v.output), "--out", out])]);
    expect(r.code).toBe(0);
    const got = bytes(out);
    const want = bytes(vec(v.input));
    expect(got.length).toBe((v.stride + 4) * v.height);
    for (let y = 0; y < v.height; y++) {
      expect(got.subarray(y * (v.stride + 4), y * (v.stride + 4) + v.stride).equals(want.subarray(y * v.stride, (y + 1) * v.stride))).toBe(true);
      expect([...got.subarray(y * (v.stride + 4) + v.stride, (y + 1) * (v.stride + 4))]).toEqual([0, 0, 0, 0]);
    }
  });
});

describe("qumra codec errors", () => {
  const v = () => find("lz", "rgb32", "flat_64x64");
  const out = () => path.join(dir, "err.out");

  it("a size that does not match the file names the size flags", async () => {
    const r = await runCli(["codec", "encode", "--codec", "lz", "--type", "rgb32", "--width", "65", "--height", "64", "--in", vec(v().input), "--out", out()]);
    expectClearError(r, /--in .*16384 bytes do not match --width 65 --height 64/);
  });

  it("unknown codec and type name the flag", async () => {
    expectClearError(await runCli(["codec", "encode", "--codec", "zip", "--type", "rgb32", "--width", "64", "--height", "64", "--in", vec(v().input), "--out", out()]), /--codec zip: expected one of quic, lz, glz/);
    expectClearError(await runCli(["codec", "encode", "--codec", "lz", "--type", "rgb48", "--width", "64", "--height", "64", "--in", vec(v().input), "--out", out()]), /--type rgb48: expected one of/);
  });

  it("a type the codec cannot carry names --type", async () => {
    expectClearError(await runCli(["codec", "encode", "--codec", "lz", "--type", "gray", "--width", "64", "--height", "64", "--in", vec("flat_64x64_s1.gray.raw"), "--out", out()]), /--type gray: lz does not support gray/);
    expectClearError(await runCli(["codec", "encode", "--codec", "quic", "--type", "plt8", "--width", "64", "--height", "64", "--in", vec("flat_64x64_s1.plt8.raw"), "--out", out()]), /--type plt8: quic does not support plt8/);
    expectClearError(await runCli(["codec", "decode", "--codec", "glz", "--type", "rgb24", "--width", "64", "--height", "64", "--in", vec("glzseq0.0.glz"), "--out", out()]), /--type rgb24: glz does not support/);
  });

  it("undecodable input names --in", async () => {
    expectClearError(await runCli(["codec", "decode", "--codec", "quic", "--type", "rgb32", "--width", "64", "--height", "64", "--in", vec(v().output), "--out", out()]), /--in .*cannot decode as quic/);
    expectClearError(await runCli(["codec", "decode", "--codec", "lz", "--type", "rgb32", "--width", "64", "--height", "64", "--in", vec(v().input), "--out", out()]), /--in .*cannot decode as lz: .*bad magic/);
    // the second GLZ stream refers to the first, which this decoder never saw
    expectClearError(await runCli(["codec", "decode", "--codec", "glz", "--type", "rgb32", "--width", "257", "--height", "33", "--in", vec("glzseq1.1.glz"), "--out", out()]), /--in .*cannot decode as glz: .*not in the window/);
  });

  it("a stream of another size or type than the flags say names the flag", async () => {
    expectClearError(await runCli(["codec", "decode", "--codec", "lz", "--type", "rgb32", "--width", "32", "--height", "64", "--in", vec(v().output), "--out", out()]), /--width 32: .*64 pixels wide/);
    expectClearError(await runCli(["codec", "decode", "--codec", "lz", "--type", "rgba", "--width", "64", "--height", "64", "--in", vec(v().output), "--out", out()]), /--type rgba: .*rgb32/);
  });

  it("several --in only for glz; a missing file names --in", async () => {
    expectClearError(await runCli(["codec", "encode", ...flags(v(), ["--in", vec(v().input), "--in", vec(v().input), "--out", out()])]), /--in: only glz takes several/);
    expectClearError(await runCli(["codec", "encode", ...flags(v(), ["--in", path.join(dir, "nope.raw"), "--out", out()])]), /--in .*nope\.raw: no such file/);
    expect(existsSync(out())).toBe(false);
  });
});

describe("qumra bench encode", () => {
  it("--size 256x144 --runs 1 --json: rows for every codec and image with positive figures; --chart writes an SVG", async () => {
    const png = path.join(dir, "shot.png");
    writeFileSync(png, encodePng(200, 120, generateImage("desktop", 200, 120)));
    const chart = path.join(dir, "chart.svg");
    const r = await runCli(["--json", "bench", "encode", "--size", "256x144", "--runs", "1", "--image", `desktop,photo,noise,${png}`, "--chart", chart]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
    const keys = ["quic", "lz", "glz first", "glz repeated", "glz other", "zlib", "lz4"];
    for (const image of ["desktop", "photo", "noise", "shot.png"]) {
      const mine = rows.filter((row) => row.image === image);
      expect(mine.map((row) => (row.variant ? `${row.codec} ${row.variant}` : row.codec)).sort()).toEqual([...keys].sort());
      for (const row of mine) {
        for (const k of ["encodeMBps", "decodeMBps", "outputBytes", "ratio", "encodeVsZlib", "encodeVsLz4", "decodeVsZlib", "decodeVsLz4",
          "zlibEncodeMBps", "zlibDecodeMBps", "lz4EncodeMBps", "lz4DecodeMBps"]) {
          expect(row[k], `${image} ${String(row.label)} ${k}`).toBeGreaterThan(0);
        }
        expect(row.verified).toBe(true);
        if (row.codec === "glz") expect(row.encodeTimeVsLz).toBeGreaterThan(0);
        else expect(row.encodeTimeVsLz).toBeUndefined();
      }
      const repeated = mine.find((row) => row.variant === "repeated")!;
      expect(repeated.outputBytes as number).toBeLessThan(1000); // the window still holds the first copy
    }
    expect(rows.find((row) => row.image === "shot.png")).toMatchObject({ width: 200, height: 120 });
    const svg = readFileSync(chart, "utf8");
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain("glz repeated");
  });

  it("--codec glz alone still times LZ, for GLZ's time against LZ's, without showing its rows", async () => {
    const r = await runCli(["--json", "bench", "encode", "--codec", "glz", "--image", "desktop", "--size", "64x32", "--runs", "1"]);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(rows.map((row) => `${String(row.codec)} ${String(row.variant)}`)).toEqual(["glz first", "glz repeated", "glz other"]);
    for (const row of rows) expect(row.encodeTimeVsLz).toBeGreaterThan(0);
  });

  it("rejects an unknown codec or a malformed size naming the flag", async () => {
    expectClearError(await runCli(["bench", "encode", "--codec", "quic,jpeg", "--runs", "1"]), /--codec jpeg/);
    expectClearError(await runCli(["bench", "encode", "--size", "big", "--runs", "1"]), /--size big/);
  });
});
