// PNG reader and writer: round trips, every row filter (written here by a straightforward encoder that
// applies the PNG predictors), RGBA, split IDAT chunks, and files the reader must refuse.
import { describe, it, expect } from "vitest";
import { deflateSync } from "node:zlib";
import { inflateSync } from "node:zlib";
import { CodecError } from "../agent/src/codec/image.js";
import { decodePng, encodePng } from "../agent/src/codec/png.js";
import { generateImage } from "../bench/test-images.js";

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** A PNG of `rgb(a)` rows with row y using filter `filters[y % n]`, IDAT split into `parts` chunks. */
function makePng(width: number, height: number, channels: 3 | 4, pixels: Uint8Array, filters: number[], parts = 1,
  ihdr: { depth?: number; color?: number; interlace?: number } = {}): Buffer {
  const rowBytes = width * channels;
  const raw = Buffer.alloc((rowBytes + 1) * height);
  for (let y = 0; y < height; y++) {
    const f = filters[y % filters.length];
    raw[y * (rowBytes + 1)] = f;
    for (let i = 0; i < rowBytes; i++) {
      const x = pixels[y * rowBytes + i];
      const a = i >= channels ? pixels[y * rowBytes + i - channels] : 0;
      const b = y > 0 ? pixels[(y - 1) * rowBytes + i] : 0;
      const c = y > 0 && i >= channels ? pixels[(y - 1) * rowBytes + i - channels] : 0;
      const pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][f];
      raw[y * (rowBytes + 1) + 1 + i] = (x - pred) & 0xff;
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([ihdr.depth ?? 8, ihdr.color ?? (channels === 4 ? 6 : 2), 0, 0, ihdr.interlace ?? 0], 8);
  const z = deflateSync(raw);
  const step = Math.ceil(z.length / parts);
  const idats = [];
  for (let at = 0; at < z.length; at += step) idats.push(chunk("IDAT", z.subarray(at, at + step)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header), ...idats, chunk("IEND", new Uint8Array(0))]);
}

/** Deterministic RGB(A) bytes with structure (so the predictors matter) and noise. */
function samplePixels(width: number, height: number, channels: number, seed = 7): Uint8Array {
  const out = new Uint8Array(width * height * channels);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const x = Math.floor(i / channels) % width;
    out[i] = (x * 3 + Math.floor(i / (width * channels)) * 5 + (s >>> 28)) & 0xff;
  }
  return out;
}

function toBgrx(rgb: Uint8Array, channels: number): Uint8Array {
  const n = rgb.length / channels;
  const out = new Uint8Array(n * 4);
  for (let p = 0; p < n; p++) {
    out[p * 4] = rgb[p * channels + 2];
    out[p * 4 + 1] = rgb[p * channels + 1];
    out[p * 4 + 2] = rgb[p * channels];
    out[p * 4 + 3] = channels === 4 ? rgb[p * channels + 3] : 0;
  }
  return out;
}

describe("decodePng", () => {
  it.each([
    ["none", [0]], ["sub", [1]], ["up", [2]], ["average", [3]], ["paeth", [4]], ["mixed", [0, 1, 2, 3, 4]],
  ])("reads 8-bit RGB with %s filters", (_name, filters) => {
    const rgb = samplePixels(37, 11, 3);
    const img = decodePng(makePng(37, 11, 3, rgb, filters));
    expect(img).toMatchObject({ width: 37, height: 11, hasAlpha: false });
    expect(Buffer.from(img.bgrx).equals(Buffer.from(toBgrx(rgb, 3)))).toBe(true);
  });

  it("reads 8-bit RGBA (alpha in byte 3) split over several IDAT chunks", () => {
    const rgba = samplePixels(20, 9, 4, 3);
    const img = decodePng(makePng(20, 9, 4, rgba, [4, 3, 2, 1, 0], 5));
    expect(img.hasAlpha).toBe(true);
    expect(Buffer.from(img.bgrx).equals(Buffer.from(toBgrx(rgba, 4)))).toBe(true);
  });

  it("refuses what it does not support or cannot trust", () => {
    const rgb = samplePixels(4, 4, 3);
    const good = makePng(4, 4, 3, rgb, [0]);
    expect(() => decodePng(new Uint8Array(10))).toThrow(/signature/);
    expect(() => decodePng(makePng(4, 4, 3, rgb, [0], 1, { depth: 16 }))).toThrow(/bit depth 16/);
    expect(() => decodePng(makePng(4, 4, 3, rgb, [0], 1, { color: 3 }))).toThrow(/colour type 3/);
    expect(() => decodePng(makePng(4, 4, 3, rgb, [0], 1, { interlace: 1 }))).toThrow(/interlaced/);
    expect(() => decodePng(good.subarray(0, good.length - 20))).toThrow(CodecError);
    const corrupt = Buffer.from(good);
    corrupt[42] ^= 0xff; // inside the IDAT data: the chunk CRC no longer matches
    expect(() => decodePng(corrupt)).toThrow(/CRC/);
    expect(() => decodePng(makePng(4, 4, 3, rgb, [7]))).toThrow(/filter type 7/);
  });
});

describe("encodePng", () => {
  it("round-trips a generated desktop image (X dropped, read back as 0)", () => {
    const bgrx = generateImage("desktop", 320, 200);
    const png = encodePng(320, 200, bgrx);
    const img = decodePng(png);
    expect(img).toMatchObject({ width: 320, height: 200, hasAlpha: false });
    expect(Buffer.from(img.bgrx).equals(Buffer.from(bgrx))).toBe(true);
  });

  it("writes a plain RGB PNG that another inflater reads as rows of R,G,B", () => {
    const bgrx = new Uint8Array([1, 2, 3, 99, 4, 5, 6, 99, 7, 8, 9, 99, 10, 11, 12, 99]);
    const png = Buffer.from(encodePng(2, 2, bgrx, { level: 9 }));
    expect(png.subarray(12, 16).toString("latin1")).toBe("IHDR");
    expect([png.readUInt32BE(16), png.readUInt32BE(20), png[24], png[25], png[28]]).toEqual([2, 2, 8, 2, 0]);
    const idatLength = png.readUInt32BE(33);
    expect(png.subarray(37, 41).toString("latin1")).toBe("IDAT");
    const raw = inflateSync(png.subarray(41, 41 + idatLength));
    // Each row: filter byte, then R,G,B per pixel after undoing that filter (Sub here).
    const rows = [0, 1].map((y) => {
      const line = raw.subarray(y * 7, y * 7 + 7);
      const out = [...line.subarray(1)];
      if (line[0] === 1) for (let i = 3; i < 6; i++) out[i] = (out[i] + out[i - 3]) & 0xff;
      return out;
    });
    expect(rows).toEqual([[3, 2, 1, 6, 5, 4], [9, 8, 7, 12, 11, 10]]);
    expect(png.subarray(png.length - 8, png.length - 4).toString("latin1")).toBe("IEND");
  });

  it("refuses a buffer too small for the size", () => {
    expect(() => encodePng(4, 4, new Uint8Array(10))).toThrow(CodecError);
  });
});
