// The codec module's error codes: wasm/assembly/errors.ts and agent/src/codec/errors.ts must name the
// same codes with the same numbers, and every wrapper reports them through that one table.
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { CODEC_ERRORS, codecError } from "../agent/src/codec/errors.js";
import { CodecError } from "../agent/src/codec/image.js";
import { CodecInstance } from "../agent/src/codec/instance.js";
import { decodeLz } from "../agent/src/codec/lz.js";
import { decodeQuic } from "../agent/src/codec/quic.js";
import { GlzDecoder } from "../agent/src/codec/glz.js";
import { repoRoot } from "./helpers/vectors.js";

/** name → number of every `export const ERR_<NAME>: i32 = <n>;` in the AssemblyScript table. */
function assemblyCodes(): Map<string, number> {
  const text = readFileSync(path.join(repoRoot, "wasm/assembly/errors.ts"), "utf8");
  const codes = new Map<string, number>();
  for (const m of text.matchAll(/^export const ERR_([A-Z0-9_]+): i32 = (-?\d+);/gm)) codes.set(m[1], Number(m[2]));
  return codes;
}

describe("codec error codes", () => {
  it("the TypeScript table has exactly the AssemblyScript codes, names and numbers", () => {
    const wasm = assemblyCodes();
    expect(wasm.size).toBeGreaterThanOrEqual(10);
    const ts = new Map(Object.entries(CODEC_ERRORS).map(([name, e]) => [name, e.code as number]));
    expect(ts).toEqual(wasm);
  });
  it("each code is negative, used once, and has a message", () => {
    const codes = Object.values(CODEC_ERRORS).map((e) => e.code as number);
    expect(new Set(codes).size).toBe(codes.length);
    for (const e of Object.values(CODEC_ERRORS)) {
      expect(e.code).toBeLessThan(0);
      expect(e.message.length).toBeGreaterThan(5);
    }
    expect(codecError("X decode", CODEC_ERRORS.ORDER.code).message).toBe(`X decode: ${CODEC_ERRORS.ORDER.message}`);
    expect(codecError("X decode", -999).message).toBe("X decode: error -999");
  });
  it("QUIC, LZ and GLZ report the same failure with the same message", () => {
    const codec = new CodecInstance();
    const message = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(CodecError);
        return (e as Error).message;
      }
      throw new Error("no error");
    };
    const junk = new Uint8Array(64).fill(7);
    const magic = CODEC_ERRORS.MAGIC.message;
    expect(message(() => decodeQuic(codec, junk))).toContain(magic);
    expect(message(() => decodeLz(codec, junk))).toContain(magic);
    expect(message(() => new GlzDecoder({ windowPixels: 1024 }).decode(junk))).toContain(magic);
  });
});
