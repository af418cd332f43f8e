// The frame diff in the codec module (FrameShadow, wasm/assembly/frame_diff.ts) against a plain JS
// reference on seeded random frames: changes at row starts and ends, single pixels, whole rows, pad
// bytes, odd widths, strides with padding, and bands that leave rows out.
import { describe, it, expect } from "vitest";
import { CodecInstance } from "../agent/src/codec/instance.js";
import { FrameShadow, mergeRects, spansToRects, type Band, type DiffOptions } from "../agent/src/display/dirty-rects.js";
import type { Rect } from "../agent/src/display/types.js";
import { rng } from "./helpers/vectors.js";

/** First and last differing pixel of each row in the bands (-1, -1 for a row that is the same), by a plain scan. */
function referenceSpans(cur: Uint32Array, prev: Uint32Array, width: number, strideWords: number, height: number, bands: Band[]): Int32Array {
  const spans = new Int32Array(height * 2).fill(-2); // -2: not in a band
  for (const { y0, y1 } of bands) {
    for (let y = y0; y < y1; y++) {
      let first = -1, last = -1;
      for (let x = 0; x < width; x++) {
        if (cur[y * strideWords + x] !== prev[y * strideWords + x]) {
          if (first < 0) first = x;
          last = x;
        }
      }
      spans[2 * y] = first;
      spans[2 * y + 1] = last;
    }
  }
  return spans;
}

/** The rects as the JS diff built them before the module did step 2: the same joining rule, written out again. */
function referenceRects(spans: Int32Array, bands: Band[], options: DiffOptions): Rect[] {
  const joinGap = options.joinGap ?? 32;
  const open: Rect[] = [];
  const done: Rect[] = [];
  for (const { y0, y1 } of bands) {
    for (let y = y0; y < y1; y++) {
      const l = spans[2 * y], r = spans[2 * y + 1];
      if (l < 0) continue;
      let joined = false;
      for (let i = 0; i < open.length; i++) {
        const o = open[i];
        if (o.y + o.height !== y) {
          done.push(o);
          open.splice(i--, 1);
        } else if (!joined && l <= o.x + o.width + joinGap && r + 1 >= o.x - joinGap) {
          const x1 = Math.max(o.x + o.width, r + 1);
          o.x = Math.min(o.x, l);
          o.width = x1 - o.x;
          o.height++;
          joined = true;
        }
      }
      if (!joined) open.push({ x: l, y, width: r + 1 - l, height: 1 });
    }
  }
  return mergeRects([...done, ...open], options);
}

/** Random bands: sorted, disjoint, possibly empty of rows, possibly leaving rows out. */
function randomBands(r: () => number, height: number): Band[] {
  if (r() % 4 === 0) return [{ y0: 0, y1: height }];
  const bands: Band[] = [];
  let y = r() % 3;
  while (y < height) {
    const y1 = Math.min(height, y + 1 + (r() % 12));
    bands.push({ y0: y, y1 });
    y = y1 + 1 + (r() % 6);
  }
  return bands;
}

/** Changes the frame row by row in one of several ways (or not at all). */
function changeRows(r: () => number, cur: Uint32Array, width: number, strideWords: number, height: number): void {
  for (let y = 0; y < height; y++) {
    const row = y * strideWords;
    const flip = (x: number) => (cur[row + x] ^= 1 << (r() % 32));
    const n = 1 + (r() % Math.min(width, 20));
    switch (r() % 9) {
      case 0: for (let x = 0; x < n; x++) flip(x); break; // at the row's start
      case 1: for (let x = width - n; x < width; x++) flip(x); break; // at its end
      case 2: flip(0); flip(width - 1); break; // both ends
      case 3: flip(r() % width); break; // one pixel anywhere
      case 4: for (let x = 0; x < width; x++) if (r() % 3 === 0) flip(x); break; // scattered
      case 5: cur[row + (r() % width)] ^= 0x01000000 << (r() % 8); break; // only a pad byte: still a change
      case 6: for (let x = width; x < strideWords; x++) cur[row + x] ^= 0xffffffff; break; // past the width: not a change
      default: break; // the same
    }
  }
}

describe("frame diff in the codec module", () => {
  it("finds the same spans and rects as a plain JS scan, and updates the shadow exactly there (seeded random frames)", () => {
    const r = rng(0x5eed_d1ff);
    for (let c = 0; c < 300; c++) {
      const width = 1 + (r() % (c % 3 === 0 ? 9 : 300));
      const height = 1 + (r() % 40);
      const strideWords = width + (r() % 3 === 0 ? 0 : 1 + (r() % 9));
      const codec = new CodecInstance();
      const fs = new FrameShadow(codec, width, height, strideWords * 4);
      const words = (v: Uint8Array) => new Uint32Array(v.buffer, v.byteOffset, v.length / 4);
      const cur = words(fs.frame()), prev = words(fs.shadow());
      for (let i = 0; i < cur.length; i++) cur[i] = r();
      prev.set(cur);
      changeRows(r, cur, width, strideWords, height);
      const before = prev.slice();
      const bands = randomBands(r, height);
      const options: DiffOptions = c % 2 === 0 ? {} : { joinGap: r() % 8, mergeSlack: r() % 64, maxRects: 1 + (r() % 8) };
      const want = referenceSpans(cur, before, width, strideWords, height, bands);
      const wantRects = referenceRects(want, bands, options);

      const spans = fs.diffSpans(bands);
      for (let y = 0; y < height; y++) {
        if (want[2 * y] === -2) continue; // outside the bands: not written
        expect([spans[2 * y], spans[2 * y + 1]], `case ${c}: ${width}x${height} stride ${strideWords}, row ${y}`).toEqual([want[2 * y], want[2 * y + 1]]);
      }
      expect(spansToRects(spans, bands, options), `case ${c}`).toEqual(wantRects);
      // the shadow now holds the frame's pixels in the bands' rows, and nothing else changed
      const after = words(fs.shadow());
      for (let y = 0; y < height; y++) {
        const inBand = want[2 * y] !== -2;
        for (let x = 0; x < strideWords; x++) {
          const i = y * strideWords + x;
          const expected = inBand && x < width ? cur[i] : before[i];
          if (after[i] !== expected) expect(after[i], `case ${c}: shadow at (${x}, ${y})`).toBe(expected);
        }
      }
      // a second diff of the same bands finds nothing
      expect(fs.diffRects(bands, options), `case ${c}, again`).toEqual([]);
    }
  });

  it("keep() copies the whole frame into the shadow", () => {
    const fs = new FrameShadow(new CodecInstance(), 33, 7, 40 * 4);
    const frame = fs.frame();
    for (let i = 0; i < frame.length; i++) frame[i] = (i * 7 + 3) & 255;
    fs.keep();
    expect(Buffer.from(fs.shadow()).equals(Buffer.from(frame))).toBe(true);
    expect(fs.diffRects([{ y0: 0, y1: 7 }])).toEqual([]);
  });

  it("refuses a stride that cannot hold the row", () => {
    expect(() => new FrameShadow(new CodecInstance(), 10, 2, 36)).toThrow(/stride 36/);
    expect(() => new FrameShadow(new CodecInstance(), 10, 2, 42)).toThrow(/stride 42/);
  });
});
