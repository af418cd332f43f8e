// From dirty pages to a few dirty rectangles.
//
// 1. Pages → row bands: a dirty 4 KiB page covers a byte range of the file, hence a range of rows.
// 2. Rows → spans: within those rows, the first and last pixel that differ from the viewer's shadow
//    (the pixels it was last sent) bound the row's change; identical rows drop out (a guest rewriting
//    the same pixels, or a page that is only partly on screen). The codec module does this step
//    (wasm/assembly/frame_diff.ts) on a frame and shadow in its memory: FrameShadow.
// 3. Spans → rects: consecutive changed rows whose spans overlap (or nearly) grow one rect.
// 4. Merge: rects that overlap or whose bounding box wastes little area merge; then, while there are
//    more than the cap, the pair whose union adds the least area merges.
import type { CodecInstance } from "../codec/instance.js";
import type { CodecExports } from "../codec/wasm-module.js";
import { PAGE_SIZE, type Rect } from "./types.js";

export interface Band {
  /** First row. */
  y0: number;
  /** One past the last row. */
  y1: number;
}

/** Row bands [y0, y1) touched by the set pages of `bitmap` (bit i LSB-first = bytes [i*4096, (i+1)*4096)). */
export function pagesToBands(bitmap: Uint8Array, stride: number, height: number, pageSize = PAGE_SIZE): Band[] {
  const bands: Band[] = [];
  const pages = Math.ceil((stride * height) / pageSize);
  const bytes = Math.min(bitmap.length, Math.ceil(pages / 8));
  let runStart = -1;
  const close = (endPage: number): void => {
    const y0 = Math.floor((runStart * pageSize) / stride);
    const y1 = Math.min(height, Math.ceil((endPage * pageSize) / stride));
    const last = bands[bands.length - 1];
    if (last && y0 <= last.y1) last.y1 = Math.max(last.y1, y1);
    else if (y1 > y0) bands.push({ y0, y1 });
    runStart = -1;
  };
  for (let b = 0; b < bytes; b++) {
    const v = bitmap[b];
    if (v === 0) {
      if (runStart >= 0) close(b * 8);
      continue;
    }
    if (v === 0xff) {
      if (runStart < 0) runStart = b * 8;
      continue;
    }
    for (let bit = 0; bit < 8; bit++) {
      const page = b * 8 + bit;
      if (page >= pages) break;
      if (v & (1 << bit)) {
        if (runStart < 0) runStart = page;
      } else if (runStart >= 0) close(page);
    }
  }
  if (runStart >= 0) close(Math.min(pages, bytes * 8));
  return bands;
}

/** ORs `src` into `dst` (page bitmaps of the same display); returns whether src had any bit set. */
export function orInto(dst: Uint8Array, src: Uint8Array): boolean {
  let any = 0;
  const n = Math.min(dst.length, src.length);
  for (let i = 0; i < n; i++) {
    any |= src[i];
    dst[i] |= src[i];
  }
  return any !== 0;
}

export function isEmpty(bitmap: Uint8Array): boolean {
  for (let i = 0; i < bitmap.length; i++) if (bitmap[i] !== 0) return false;
  return true;
}

export interface DiffOptions {
  /** Rows whose spans come within this many pixels horizontally join the same rect (default 32). */
  joinGap?: number;
  /** At most this many rects (default 32). */
  maxRects?: number;
  /** Merge two rects when their union wastes at most this many pixels over their sum (default 4096). */
  mergeSlack?: number;
}

/** The module's frame-diff exports (wasm/assembly/frame_diff.ts). */
interface FrameDiffExports extends CodecExports {
  frameDiffRows(frame: number, shadow: number, stride: number, width: number, y0: number, y1: number, spans: number): number;
  frameCopy(dst: number, src: number, bytes: number): void;
}

/**
 * A whole frame of 32-bit pixels and its shadow (the pixels last sent), both in one codec instance's
 * memory, so that reads from the framebuffer file land in the frame, the codecs encode from it, and
 * the module compares it with the shadow (step 2).
 */
export class FrameShadow {
  /** Offset of the frame in the instance's memory (16-byte aligned); row y starts at frameOffset + y × stride. */
  readonly frameOffset: number;
  readonly shadowOffset: number;
  /** Two i32 per row: the first and last differing pixel, or -1, -1 (written by frameDiffRows). */
  private readonly spansOffset: number;

  /** Bytes of frame (and of shadow) this one's memory holds, and rows of spans. */
  private readonly frameCapacity: number;
  private readonly rowCapacity: number;

  /** `reuse`: a FrameShadow of the same instance whose memory to take over when the new frame fits. */
  constructor(private readonly codec: CodecInstance, readonly width: number, readonly height: number, readonly stride: number, reuse?: FrameShadow) {
    if (stride % 4 !== 0 || stride < width * 4) throw new Error(`stride ${stride} does not fit ${width} 32-bit pixels`);
    const x = codec.exports;
    if (reuse && reuse.codec === codec && reuse.frameCapacity >= stride * height && reuse.rowCapacity >= height) {
      ({ frameOffset: this.frameOffset, shadowOffset: this.shadowOffset, spansOffset: this.spansOffset, frameCapacity: this.frameCapacity, rowCapacity: this.rowCapacity } = reuse);
      return;
    }
    this.frameCapacity = stride * height;
    this.rowCapacity = height;
    this.frameOffset = x.alloc(stride * height);
    this.shadowOffset = x.alloc(stride * height);
    this.spansOffset = x.alloc(height * 8);
  }

  /** A fresh view of the frame (memory.grow detaches older views). */
  frame(): Uint8Array {
    return this.codec.view(this.frameOffset, this.stride * this.height);
  }

  /** A fresh view of the shadow. */
  shadow(): Uint8Array {
    return this.codec.view(this.shadowOffset, this.stride * this.height);
  }

  /** Makes the shadow a copy of the frame (a keyframe sent it all), inside the module's memory. */
  keep(): void {
    (this.codec.exports as FrameDiffExports).frameCopy(this.shadowOffset, this.frameOffset, this.stride * this.height);
  }

  /**
   * The spans of the rows in `bands` where the frame differs from the shadow, indexed by row
   * (spans[2y], spans[2y + 1]: first and last differing pixel, -1 for a row that is the same; rows
   * outside the bands are not written). The shadow takes the frame's pixels there. The view is valid
   * until the next call on the instance.
   */
  diffSpans(bands: Band[]): Int32Array {
    const x = this.codec.exports as FrameDiffExports;
    for (const b of bands) x.frameDiffRows(this.frameOffset, this.shadowOffset, this.stride, this.width, b.y0, b.y1, this.spansOffset);
    return new Int32Array(x.memory.buffer, this.spansOffset, this.height * 2);
  }

  /** Rects where the frame differs from the shadow inside the bands (steps 2-4); updates the shadow there. */
  diffRects(bands: Band[], options: DiffOptions = {}): Rect[] {
    return spansToRects(this.diffSpans(bands), bands, options);
  }
}

/** Rects of the changed rows of the bands, from their spans (as FrameShadow.diffSpans gives them), merged (steps 3-4). */
export function spansToRects(spans: Int32Array, bands: Band[], options: DiffOptions = {}): Rect[] {
  const joinGap = options.joinGap ?? 32;
  const open: Rect[] = [];
  const done: Rect[] = [];
  for (const { y0, y1 } of bands) {
    for (let y = y0; y < y1; y++) {
      const l = spans[2 * y];
      if (l < 0) continue;
      const r = spans[2 * y + 1];
      // Extend the open rect that ends on the previous row and comes near this span; close the rest.
      let joined = false;
      for (let i = 0; i < open.length; i++) {
        const o = open[i];
        if (o.y + o.height !== y) {
          done.push(o);
          open.splice(i--, 1);
          continue;
        }
        if (!joined && l <= o.x + o.width + joinGap && r + 1 >= o.x - joinGap) {
          const x0 = Math.min(o.x, l);
          const x1 = Math.max(o.x + o.width, r + 1);
          o.x = x0;
          o.width = x1 - x0;
          o.height++;
          joined = true;
        }
      }
      if (!joined) open.push({ x: l, y, width: r + 1 - l, height: 1 });
    }
  }
  done.push(...open);
  return mergeRects(done, options);
}

const area = (r: Rect): number => r.width * r.height;

function union(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
}

function overlaps(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/** Merges overlapping and nearly-adjacent rects, then caps the count (see the file comment). */
export function mergeRects(input: Rect[], options: DiffOptions = {}): Rect[] {
  const maxRects = options.maxRects ?? 32;
  const slack = options.mergeSlack ?? 4096;
  let rects = input.map((r) => ({ ...r }));
  // Very many rects (noise-like changes): fold neighbours in row order first, so the pair search is small.
  while (rects.length > 256) {
    rects.sort((a, b) => a.y - b.y || a.x - b.x);
    const folded: Rect[] = [];
    for (let i = 0; i < rects.length; i += 2) folded.push(i + 1 < rects.length ? union(rects[i], rects[i + 1]) : rects[i]);
    rects = folded;
  }
  // Cheap merges: overlap, or a union that wastes at most `slack` pixels.
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = 0; i < rects.length && !changed; i++) {
      for (let j = i + 1; j < rects.length; j++) {
        const u = union(rects[i], rects[j]);
        if (overlaps(rects[i], rects[j]) || area(u) - area(rects[i]) - area(rects[j]) <= slack) {
          rects[i] = u;
          rects.splice(j, 1);
          changed = true;
          break;
        }
      }
    }
  }
  // The cap: merge the cheapest pair until few enough.
  while (rects.length > maxRects) {
    let best = [0, 1];
    let bestCost = Infinity;
    for (let i = 0; i < rects.length; i++) {
      for (let j = i + 1; j < rects.length; j++) {
        const cost = area(union(rects[i], rects[j])) - area(rects[i]) - area(rects[j]);
        if (cost < bestCost) {
          bestCost = cost;
          best = [i, j];
        }
      }
    }
    rects[best[0]] = union(rects[best[0]], rects[best[1]]);
    rects.splice(best[1], 1);
  }
  // A union can overlap a rect it did not absorb; encoding both is correct (the later rect repaints the same pixels).
  return rects.sort((a, b) => a.y - b.y || a.x - b.x);
}
