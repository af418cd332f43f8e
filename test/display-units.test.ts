// Units of the display pipeline: pages → bands → rects, text → scancodes.
import { describe, it, expect } from "vitest";
import { pagesToBands, FrameShadow, mergeRects, orInto, isEmpty, type Band, type DiffOptions } from "../agent/src/display/dirty-rects.js";
import { CodecInstance } from "../agent/src/codec/instance.js";
import { keyEventBytes, textToScancodes } from "../agent/src/display/input-keys.js";
import { planInput } from "../agent/src/display/input.js";
import { QumraError } from "../agent/src/errors.js";

function bitmapOf(pages: number[], total = 4096): Uint8Array {
  const b = new Uint8Array(Math.ceil(total / 8));
  for (const p of pages) b[p >> 3] |= 1 << (p & 7);
  return b;
}

describe("pagesToBands", () => {
  it("maps pages to the rows they cover and joins adjacent ones", () => {
    // 1920 px rows: 7680 bytes; page 0 = bytes 0..4095 → row 0; page 1 = 4096..8191 → rows 0..1.
    expect(pagesToBands(bitmapOf([0]), 7680, 1080)).toEqual([{ y0: 0, y1: 1 }]);
    expect(pagesToBands(bitmapOf([0, 1]), 7680, 1080)).toEqual([{ y0: 0, y1: 2 }]);
    expect(pagesToBands(bitmapOf([1]), 7680, 1080)).toEqual([{ y0: 0, y1: 2 }]);
    // 1024 px rows: one page per row.
    expect(pagesToBands(bitmapOf([5, 6, 7, 20]), 4096, 768)).toEqual([{ y0: 5, y1: 8 }, { y0: 20, y1: 21 }]);
  });
  it("handles full bytes, the last page and bits beyond the screen", () => {
    const all = new Uint8Array(100).fill(0xff); // more pages than the screen has
    expect(pagesToBands(all, 4096, 768)).toEqual([{ y0: 0, y1: 768 }]);
    expect(pagesToBands(bitmapOf([767]), 4096, 768)).toEqual([{ y0: 767, y1: 768 }]);
    expect(pagesToBands(new Uint8Array(96), 4096, 768)).toEqual([]);
    // small screen: 100x10 = 4000 bytes, one page
    expect(pagesToBands(bitmapOf([0]), 400, 10)).toEqual([{ y0: 0, y1: 10 }]);
  });
  it("ORs bitmaps and tells empty ones", () => {
    const a = bitmapOf([1], 64);
    expect(orInto(a, bitmapOf([9], 64))).toBe(true);
    expect(a).toEqual(bitmapOf([1, 9], 64));
    expect(orInto(a, new Uint8Array(8))).toBe(false);
    expect(isEmpty(new Uint8Array(8))).toBe(true);
    expect(isEmpty(a)).toBe(false);
  });
});

describe("FrameShadow.diffRects", () => {
  const W = 64, H = 48;
  /** A frame (cur) and its shadow (prev) of 32-bit pixels, rows `strideWords` apart, in a codec instance's memory. */
  const frames = (strideWords = W) => {
    const fs = new FrameShadow(new CodecInstance(), W, H, strideWords * 4);
    const words = (v: Uint8Array) => new Uint32Array(v.buffer, v.byteOffset, v.length / 4);
    const cur = words(fs.frame()), prev = words(fs.shadow());
    const diffRects = (bands: Band[], options?: DiffOptions) => fs.diffRects(bands, options);
    return { cur, prev, diffRects };
  };
  const all = [{ y0: 0, y1: H }];

  it("finds the exact rect of a change inside a band", () => {
    const { cur, diffRects } = frames();
    for (let y = 10; y < 14; y++) for (let x = 20; x < 25; x++) cur[y * W + x] = 0xff;
    expect(diffRects(all)).toEqual([{ x: 20, y: 10, width: 5, height: 4 }]);
  });
  it("ignores rows outside the bands and rows that did not change", () => {
    const { cur, diffRects } = frames();
    cur[5 * W + 3] = 1;
    cur[30 * W + 40] = 1;
    expect(diffRects([{ y0: 20, y1: 40 }])).toEqual([{ x: 40, y: 30, width: 1, height: 1 }]);
    expect(frames().diffRects(all)).toEqual([]);
  });
  it("keeps far-apart changes separate and merges near ones", () => {
    const change = () => {
      const f = frames();
      f.cur[2 * W + 1] = 1;
      f.cur[40 * W + 60] = 1;
      return f.diffRects;
    };
    expect(change()(all, { mergeSlack: 0 })).toEqual([{ x: 1, y: 2, width: 1, height: 1 }, { x: 60, y: 40, width: 1, height: 1 }]);
    // with a generous slack they merge into one bounding box
    expect(change()(all, { mergeSlack: 100000 })).toEqual([{ x: 1, y: 2, width: 60, height: 39 }]);
  });
  it("honours a stride wider than the screen", () => {
    const S = 80;
    const { cur, diffRects } = frames(S);
    cur[7 * S + 70] = 1; // beyond the visible width: not a change
    cur[8 * S + 63] = 1;
    expect(diffRects(all)).toEqual([{ x: 63, y: 8, width: 1, height: 1 }]);
  });
  it("caps the number of rects, covering every change", () => {
    const { cur, diffRects } = frames();
    const points: [number, number][] = [];
    for (let i = 0; i < 40; i++) points.push([(i * 37) % W, (i * 11) % H]);
    for (const [x, y] of points) cur[y * W + x] = 7;
    const rects = diffRects(all, { maxRects: 5, mergeSlack: 0, joinGap: 0 });
    expect(rects.length).toBeLessThanOrEqual(5);
    for (const [x, y] of points) expect(rects.some((r) => x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height)).toBe(true);
  });
  it("mergeRects merges overlapping rects", () => {
    expect(mergeRects([{ x: 0, y: 0, width: 10, height: 10 }, { x: 5, y: 5, width: 10, height: 10 }], { mergeSlack: 0 })).toEqual([{ x: 0, y: 0, width: 15, height: 15 }]);
  });
});

describe("text → scancodes", () => {
  it("types letters, digits, shifted symbols and newlines on a US layout", () => {
    expect(textToScancodes("a")).toEqual([0x1e, 0x9e]);
    expect(textToScancodes("A")).toEqual([0x2a, 0x1e, 0x9e, 0xaa]);
    expect(textToScancodes("1!")).toEqual([0x02, 0x82, 0x2a, 0x02, 0x82, 0xaa]);
    expect(textToScancodes(" \n")).toEqual([0x39, 0xb9, 0x1c, 0x9c]);
    expect(textToScancodes("?")).toEqual([0x2a, 0x35, 0xb5, 0xaa]);
    expect(textToScancodes("~|")).toEqual([0x2a, 0x29, 0xa9, 0xaa, 0x2a, 0x2b, 0xab, 0xaa]);
  });
  it("every printable ASCII character has a key", () => {
    for (let c = 0x20; c < 0x7f; c++) expect(textToScancodes(String.fromCharCode(c)).length).toBeGreaterThanOrEqual(2);
  });
  it("refuses what a US keyboard cannot type and text over 1024 characters", () => {
    expect(() => textToScancodes("é")).toThrow(/cannot be typed/);
    expect(() => textToScancodes("\t")).toThrow(QumraError);
    expect(() => textToScancodes("x".repeat(1025))).toThrow(/at most 1024/);
  });
  it("key events: make/break, extended codes with the 0xe0 prefix", () => {
    expect(keyEventBytes(0x1e, true)).toEqual([0x1e]);
    expect(keyEventBytes(0x1e, false)).toEqual([0x9e]);
    expect(keyEventBytes(0xe048, true)).toEqual([0xe0, 0x48]);
    expect(keyEventBytes(0xe048, false)).toEqual([0xe0, 0xc8]);
    expect(() => keyEventBytes(0x9e, true)).toThrow(/break code/);
    expect(() => keyEventBytes(0x1234, true)).toThrow(/extended/);
    expect(() => keyEventBytes(0, true)).toThrow();
  });
  it("plans a batch in order, clamping pointers and naming the bad event", () => {
    const steps = planInput([
      { kind: "text", text: "a" },
      { kind: "key", scancode: 0x1c, pressed: true },
      { kind: "pointer", x: 5000, y: 10, buttons: 1 },
      { kind: "text", text: "b" },
    ], { width: 1024, height: 768 });
    expect(steps).toEqual([
      { kind: "keys", bytes: Uint8Array.from([0x1e, 0x9e, 0x1c]) },
      { kind: "pointer", x: 1023, y: 10, buttons: 1 },
      { kind: "keys", bytes: Uint8Array.from([0x30, 0xb0]) },
    ]);
    expect(() => planInput([{ kind: "text", text: "ok" }, { kind: "text", text: "\u0000" }], { width: 1, height: 1 })).toThrow(/events\[1\]/);
    expect(() => planInput(Array.from({ length: 1025 }, () => ({ kind: "text" as const, text: "" })), { width: 1, height: 1 })).toThrow(/at most 1024/);
  });
});
