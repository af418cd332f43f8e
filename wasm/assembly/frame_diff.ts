// The display pipeline's frame diff: where a frame differs from its shadow (the pixels a viewer was
// last sent), row by row. Both are whole frames in this module's memory with the same stride; pixels
// are compared as whole 32-bit words, pad byte included, 16 bytes at a time.

/** Whether the 64 bytes at a and b are equal: four compares folded into one test. */
@inline function same64(a: usize, b: usize): bool {
  const d = v128.or(
    v128.or(v128.xor(v128.load(a), v128.load(b)), v128.xor(v128.load(a, 16), v128.load(b, 16))),
    v128.or(v128.xor(v128.load(a, 32), v128.load(b, 32)), v128.xor(v128.load(a, 48), v128.load(b, 48))),
  );
  return !v128.any_true(d);
}

/** Index of the first pixel of [0, width) that differs between rows f and s, or width. */
@inline function firstDifference(f: usize, s: usize, width: usize): usize {
  const end = width << 2;
  let x: usize = 0;
  // 64 bytes a step: a screen rewritten with the same pixels (every row equal) is the case to make fast
  while (x + 64 <= end && same64(f + x, s + x)) x += 64;
  while (x + 16 <= end) {
    const ne = i32x4.ne(v128.load(f + x), v128.load(s + x));
    if (v128.any_true(ne)) return (x >> 2) + <usize>ctz(i32x4.bitmask(ne));
    x += 16;
  }
  while (x < end) {
    if (load<u32>(f + x) != load<u32>(s + x)) return x >> 2;
    x += 4;
  }
  return width;
}

/** Index of the last pixel of [first, width) that differs between rows f and s (first differs). */
@inline function lastDifference(f: usize, s: usize, first: usize, width: usize): usize {
  const start = (first + 1) << 2;
  let x = width << 2;
  // 64 bytes a step, as in firstDifference: a small change at a row's start leaves the rest to scan
  while (x >= start + 64 && same64(f + x - 64, s + x - 64)) x -= 64;
  while (x >= start + 16) {
    x -= 16;
    const ne = i32x4.ne(v128.load(f + x), v128.load(s + x));
    if (v128.any_true(ne)) return (x >> 2) + 31 - <usize>clz(i32x4.bitmask(ne));
  }
  while (x > start) {
    x -= 4;
    if (load<u32>(f + x) != load<u32>(s + x)) return x >> 2;
  }
  return first;
}

/**
 * Compares rows [y0, y1) of `frame` and `shadow` (rows `stride` bytes apart, `width` pixels each).
 * For each row y it writes two i32 at spans + 8 × y: the first and the last pixel that differ, or
 * -1 and -1 when the row is the same; and it copies those pixels of the frame into the shadow.
 * Returns the number of rows that differ.
 */
export function frameDiffRows(frame: usize, shadow: usize, stride: usize, width: usize, y0: u32, y1: u32, spans: usize): u32 {
  let changed: u32 = 0;
  for (let y = y0; y < y1; y++) {
    const f = frame + <usize>y * stride;
    const s = shadow + <usize>y * stride;
    const out = spans + (<usize>y << 3);
    const first = firstDifference(f, s, width);
    if (first == width) {
      store<i64>(out, -1);
      continue;
    }
    const last = lastDifference(f, s, first, width);
    store<i32>(out, <i32>first);
    store<i32>(out, <i32>last, 4);
    memory.copy(s + (first << 2), f + (first << 2), (last - first + 1) << 2);
    changed++;
  }
  return changed;
}

/** Copies `bytes` bytes from src to dst (a keyframe's frame into its shadow). */
export function frameCopy(dst: usize, src: usize, bytes: usize): void {
  memory.copy(dst, src, bytes);
}
