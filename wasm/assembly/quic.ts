// QUIC encoder, byte-exact with spice-common's quic.c (model: ../shared/spice/NOTES.md §2).
//
// Each row goes through two steps:
//   1. `prepareRow`: per pixel, the residual symbols of all channels at once (packed in a u32), whether
//      the pixel equals its left neighbour, and whether the run-mode test fires there. This step has no
//      serial dependency, so it runs over whole rows (SIMD for the 4-byte layouts).
//   2. `codeSegment`: the serial part, walking the row in the wait-mask segments of the model schedule:
//      adaptive Golomb–Rice codes chosen by each channel's context bucket, model updates at the sampled
//      positions, and run lengths. It only sees packed symbols and flags, so it is shared by all layouts.
// Pixel layouts, code families and passes are type parameters, resolved at compile time.

import {
  QUIC_MAGIC, QUIC_VERSION, QUIC_MAX_WIDTH, QUIC_ERR_BAD_ARGS, QUIC_ERR_OUTPUT_TOO_SMALL, QUIC_ERR_TOO_WIDE,
  QUIC_TYPE_GRAY, QUIC_TYPE_RGB16, QUIC_TYPE_RGB24, QUIC_TYPE_RGB32, QUIC_TYPE_RGBA,
  Bpc8, Bpc5, PxRgb32, PxRgba, PxRgb24, PxRgb16, PxGray, PassRgb, PassGray, PassAlpha,
  BESTCODE, MELC_BITS, MELC_LAST, STATE_MAIN, STATE_ALPHA, S_WAITCNT, S_SEED, S_TRIGGER, S_WMIDX, S_WMILEFT,
  S_MELCSTATE, WM_MAX, CTX_MAIN, CTX_ALPHA, ROW_A, FLAGS, FLAG_ROW, scratchBegin, scratchEnd,
  resetModel, nextWaitMask, nextRand, updateModel, avgFloor4, symbols4,
} from "./quic_model";

// Bit writer: 64-bit accumulator, whole 32-bit words stored little endian as soon as they fill up.
// Lives in globals between segments and in locals inside the coding loop.
let wAcc: u64 = 0;
let wBits: u32 = 0;
let wOut: usize = 0;

// Flag rows (one byte per pixel): "equals left neighbour" for this and the previous row, per pass,
// and "run mode may start here" per pass.
let CAND_MAIN: usize = 0;
let CAND_ALPHA: usize = 0;
let SYM: usize = 0;

/**
 * Step 1 for row `cur` (previous row `prev`, 0 on the first row): symbols into SYM, equal-left flags
 * into `eq` (and `eqA` for alpha), run candidates from this row's and the previous row's flags.
 */
function prepareRow<T, F>(cur: usize, prev: usize, width: i32, eq: usize, eqPrev: usize, eqA: usize, eqAPrev: usize): void {
  const t = changetype<T>(0);
  const bpp = t.bpp;
  const mainMask: u32 = t.alpha ? 0x00ffffff : 0xffffffff;
  if (prev == 0) {
    let a: u32 = 0;
    for (let x = 0; x < width; x++) {
      const c = t.load(cur + usize(x) * bpp);
      store<u32>(SYM + (usize(x) << 2), symbols4<F>(c, a));
      const d = c ^ a;
      store<u8>(eq + x, u8(x > 0 && (d & mainMask) == 0));
      if (t.alpha) store<u8>(eqA + x, u8(x > 0 && (d >> 24) == 0));
      a = c;
    }
    memory.fill(CAND_MAIN, 0, width);
    if (t.alpha) memory.fill(CAND_ALPHA, 0, width);
    return;
  }
  // x = 0 predicts from above only.
  let a = t.load(cur);
  store<u32>(SYM, symbols4<F>(a, t.load(prev)));
  store<u8>(eq, 0);
  if (t.alpha) store<u8>(eqA, 0);
  let x = 1;
  if (bpp == 4) {
    // Four pixels per step; residuals in every byte, equality per pixel.
    const one = i8x16.splat(1);
    const m = i32x4.splat(mainMask);
    const am = i32x4.splat(0xff000000);
    const flagBits = i32x4(0x00000001, 0x00000100, 0x00010000, 0x01000000);
    for (; x + 4 <= width; x += 4) {
      const p = cur + (usize(x) << 2);
      const q = prev + (usize(x) << 2);
      let c = v128.load(p);
      let l = v128.load(p - 4);
      const u = v128.load(q);
      if (!t.alpha) {
        const pad = i32x4.splat(0x00ffffff);
        c = v128.and(c, pad);
        l = v128.and(l, pad);
      }
      // floor((l+u)/2) = rounding average − ((l^u)&1)
      const pred = i8x16.sub(i8x16.avgr_u(l, u), v128.and(v128.xor(l, u), one));
      const r = i8x16.sub(c, pred);
      const s = v128.xor(i8x16.shl(r, 1), i8x16.shr_s(r, 7));
      v128.store(SYM + (usize(x) << 2), s);
      const d = v128.xor(c, l);
      const e = i32x4.eq(v128.and(d, m), i32x4.splat(0));
      // one flag byte per lane → 4 bytes
      const fe = v128.and(e, flagBits);
      store<u32>(eq + x, i32x4.extract_lane(fe, 0) | i32x4.extract_lane(fe, 1) | i32x4.extract_lane(fe, 2) | i32x4.extract_lane(fe, 3));
      if (t.alpha) {
        const ea = v128.and(i32x4.eq(v128.and(d, am), i32x4.splat(0)), flagBits);
        store<u32>(eqA + x, i32x4.extract_lane(ea, 0) | i32x4.extract_lane(ea, 1) | i32x4.extract_lane(ea, 2) | i32x4.extract_lane(ea, 3));
      }
    }
    a = t.load(cur + usize(x - 1) * bpp);
  }
  for (; x < width; x++) {
    const c = t.load(cur + usize(x) * bpp);
    const b = t.load(prev + usize(x) * bpp);
    store<u32>(SYM + (usize(x) << 2), symbols4<F>(c, avgFloor4(a, b)));
    const d = c ^ a;
    store<u8>(eq + x, u8((d & mainMask) == 0));
    if (t.alpha) store<u8>(eqA + x, u8((d >> 24) == 0));
    a = c;
  }
  candidates(CAND_MAIN, eq, eqPrev, width);
  if (t.alpha) candidates(CAND_ALPHA, eqA, eqAPrev, width);
}

/** cand[x] = x > 2 && prev[x−1] == prev[x] && cur[x−2] == cur[x−1]. */
function candidates(cand: usize, eq: usize, eqPrev: usize, width: i32): void {
  let x = 3;
  for (; x + 8 <= width; x += 8) {
    store<u64>(cand + x, load<u64>(eqPrev + x) & load<u64>(eq + x - 1));
  }
  for (; x < width; x++) store<u8>(cand + x, load<u8>(eqPrev + x) & load<u8>(eq + x - 1));
  store<u8>(cand, 0);
  if (width > 1) store<u8>(cand + 1, 0);
  if (width > 2) store<u8>(cand + 2, 0);
}

/** Appends the `n` low bits of `v` (n ≤ 32) through the globals (used outside the hot loop). */
function putBits(v: u32, n: u32): void {
  wAcc = (wAcc << n) | u64(v);
  wBits += n;
  if (wBits >= 32) {
    wBits -= 32;
    store<u32>(wOut, u32(wAcc >> wBits));
    wOut += 4;
  }
}

/**
 * Step 2 for pixels [i, end) of the current row, one wait-mask segment: codes symbols SYM with the
 * family F for the channels of pass P, contexts from `ctx` (the pass's context row, position −1 at
 * ctx − 4), run candidates `cand`, equal-left flags `eq`, schedule state `st`.
 */
function codeSegment<F, P>(st: usize, i: i32, end: i32, waitmask: u32, ctx: usize, eq: usize, cand: usize): void {
  const f = changetype<F>(0);
  const p = changetype<P>(0);
  const enc = f.enc;
  const bucket = f.bucket;
  const best0 = BESTCODE + p.ch0 * 8;
  const best1 = BESTCODE + p.ch1 * 8;
  const best2 = BESTCODE + p.ch2 * 8;
  const trigger = load<u32>(st + S_TRIGGER);
  let acc = wAcc;
  let bits = wBits;
  let out = wOut;
  let stop = i + i32(load<u32>(st + S_WAITCNT));
  let runIndex = 0;
  let mstate = load<u32>(st + S_MELCSTATE);
  let ctxv = load<u32>(ctx + (usize(i) << 2) - 4);
  while (i < end) {
    if (load<u8>(cand + i) != 0 && runIndex != i) {
      // Run mode: count the pixels equal to their left neighbour, code the count.
      runIndex = i;
      let j = i;
      while (j + 8 <= end) {
        const w = load<u64>(eq + j);
        if (w != 0x0101010101010101) {
          j += i32(ctz<u64>(~w & 0x0101010101010101) >> 3);
          break;
        }
        j += 8;
      }
      if (j + 8 > end) {
        while (j < end && load<u8>(eq + j) != 0) j++;
      }
      let n = u32(j - i);
      // MELCODE: a 1 per whole "order" of the current state (moving up), then 0 and the remainder.
      let mbits = u32(load<u8>(MELC_BITS + mstate));
      let hits: u32 = 0;
      while (n >= (u32(1) << mbits)) {
        n -= u32(1) << mbits;
        hits++;
        if (mstate < u32(MELC_LAST)) {
          mstate++;
          mbits = u32(load<u8>(MELC_BITS + mstate));
        }
      }
      while (hits > 16) {
        acc = (acc << 16) | 0xffff;
        bits += 16;
        store<u32>(out, u32(acc >> u64(bits - 32)));
        out += usize(bits >> 5) << 2;
        bits &= 31;
        hits -= 16;
      }
      const tail = mbits + 1;
      acc = (acc << (hits + tail)) | (u64((u32(1) << hits) - 1) << tail) | u64(n);
      bits += hits + tail;
      store<u32>(out, u32(acc >> u64(bits - 32)));
      out += usize(bits >> 5) << 2;
      bits &= 31;
      if (mstate > 0) mstate--;
      const len = j - i;
      i = j;
      if (i == end) {
        stop = stop - runIndex + end; // leaves waitcnt = stop − runIndex below
        break;
      }
      stop += len;
      ctxv = load<u32>(ctx + (usize(i) << 2) - 4);
      continue;
    }
    const sv = load<u32>(SYM + (usize(i) << 2));
    {
      const s = (sv >> p.sh0) & 0xff;
      const c = (ctxv >> p.sh0) & 0xff;
      const l = u32(load<u8>(best0 + load<u8>(bucket + c)));
      const e = u32(load<u16>(enc + (((l << 8) | s) << 1)));
      const n = e >> 8;
      acc = (acc << n) | u64(e & 0xff);
      bits += n;
      store<u32>(out, u32(acc >> u64(bits - 32)));
      out += usize(bits >> 5) << 2;
      bits &= 31;
    }
    if (p.nch > 1) {
      const s = (sv >> p.sh1) & 0xff;
      const c = (ctxv >> p.sh1) & 0xff;
      const l = u32(load<u8>(best1 + load<u8>(bucket + c)));
      const e = u32(load<u16>(enc + (((l << 8) | s) << 1)));
      const n = e >> 8;
      acc = (acc << n) | u64(e & 0xff);
      bits += n;
      store<u32>(out, u32(acc >> u64(bits - 32)));
      out += usize(bits >> 5) << 2;
      bits &= 31;
    }
    if (p.nch > 2) {
      const s = (sv >> p.sh2) & 0xff;
      const c = (ctxv >> p.sh2) & 0xff;
      const l = u32(load<u8>(best2 + load<u8>(bucket + c)));
      const e = u32(load<u16>(enc + (((l << 8) | s) << 1)));
      const n = e >> 8;
      acc = (acc << n) | u64(e & 0xff);
      bits += n;
      store<u32>(out, u32(acc >> u64(bits - 32)));
      out += usize(bits >> 5) << 2;
      bits &= 31;
    }
    store<u32>(ctx + (usize(i) << 2), sv);
    if (i == stop) {
      updateModel<F>(p.ch0, (ctxv >> p.sh0) & 0xff, (sv >> p.sh0) & 0xff, trigger);
      if (p.nch > 1) updateModel<F>(p.ch1, (ctxv >> p.sh1) & 0xff, (sv >> p.sh1) & 0xff, trigger);
      if (p.nch > 2) updateModel<F>(p.ch2, (ctxv >> p.sh2) & 0xff, (sv >> p.sh2) & 0xff, trigger);
      stop = i + 1 + i32(nextRand(st + S_SEED) & waitmask);
    }
    ctxv = sv;
    i++;
  }
  store<u32>(st + S_WAITCNT, u32(stop - end));
  store<u32>(st + S_MELCSTATE, mstate);
  wAcc = acc;
  wBits = bits;
  wOut = out;
}

/** Step 2 for a whole row: splits it at the wait-mask schedule's boundaries. */
function codeRow<F, P>(st: usize, width: i32, ctx: usize, eq: usize, cand: usize): void {
  let pos = 0;
  let left = width;
  while (load<u32>(st + S_WMIDX) < WM_MAX && i32(load<u32>(st + S_WMILEFT)) <= left) {
    const seg = i32(load<u32>(st + S_WMILEFT));
    if (seg > 0) {
      codeSegment<F, P>(st, pos, pos + seg, (u32(1) << load<u32>(st + S_WMIDX)) - 1, ctx, eq, cand);
      left -= seg;
      pos += seg;
    }
    nextWaitMask(st);
  }
  if (left > 0) {
    codeSegment<F, P>(st, pos, pos + left, (u32(1) << load<u32>(st + S_WMIDX)) - 1, ctx, eq, cand);
    if (load<u32>(st + S_WMIDX) < WM_MAX) store<u32>(st + S_WMILEFT, load<u32>(st + S_WMILEFT) - u32(left));
  }
}

/** Worst-case bytes one row can add: every channel at the 26-bit codeword limit plus a run code per pixel. */
@inline function rowBound(width: i32, nch: u32, alpha: bool): usize {
  const bitsPerPixel: usize = usize(nch) * 26 + 17 + (alpha ? 43 : 0);
  return ((usize(width) * bitsPerPixel + 7) >> 3) + 16;
}

function encodeImage<T, F, P>(width: i32, height: i32, first: usize, step: isize, out: usize, outEnd: usize): isize {
  const t = changetype<T>(0);
  const f = changetype<F>(0);
  const p = changetype<P>(0);
  resetModel(f.bpc);
  store<u32>(out, QUIC_MAGIC);
  store<u32>(out, QUIC_VERSION, 4);
  store<u32>(out, u32(t.type), 8);
  store<u32>(out, u32(width), 12);
  store<u32>(out, u32(height), 16);
  wAcc = 0;
  wBits = 0;
  wOut = out + 20;
  const bound = rowBound(width, p.nch, t.alpha);
  const EQ_MAIN_0 = FLAGS;
  const EQ_MAIN_1 = FLAGS + FLAG_ROW;
  const EQ_ALPHA_0 = FLAGS + 2 * FLAG_ROW;
  const EQ_ALPHA_1 = FLAGS + 3 * FLAG_ROW;
  CAND_MAIN = FLAGS + 4 * FLAG_ROW;
  CAND_ALPHA = FLAGS + 5 * FLAG_ROW;
  SYM = ROW_A;
  let prev: usize = 0;
  let row = first;
  for (let y = 0; y < height; y++) {
    if (wOut + bound > outEnd) return QUIC_ERR_OUTPUT_TOO_SMALL;
    const odd = (y & 1) != 0;
    const eq = odd ? EQ_MAIN_1 : EQ_MAIN_0;
    const eqPrev = odd ? EQ_MAIN_0 : EQ_MAIN_1;
    const eqA = odd ? EQ_ALPHA_1 : EQ_ALPHA_0;
    const eqAPrev = odd ? EQ_ALPHA_0 : EQ_ALPHA_1;
    prepareRow<T, F>(row, prev, width, eq, eqPrev, eqA, eqAPrev);
    // Context of pixel 0: pixel 0 of the previous row (nothing on the first row).
    store<u32>(CTX_MAIN, y == 0 ? 0 : load<u32>(CTX_MAIN + 4));
    codeRow<F, P>(STATE_MAIN, width, CTX_MAIN + 4, eq, CAND_MAIN);
    if (t.alpha) {
      store<u32>(CTX_ALPHA, y == 0 ? 0 : load<u32>(CTX_ALPHA + 4));
      codeRow<F, PassAlpha>(STATE_ALPHA, width, CTX_ALPHA + 4, eqA, CAND_ALPHA);
    }
    prev = row;
    row = usize(isize(row) + step);
  }
  // Pad the last word, then one all-zero word.
  if (wBits > 0) {
    store<u32>(wOut, u32(wAcc << (32 - wBits)));
    wOut += 4;
  }
  store<u32>(wOut, 0);
  wOut += 4;
  return isize(wOut - out);
}

/** Bytes of output that always suffice for a `width`×`height` image of QUIC type `type`. */
export function quicMaxEncodedSize(type: i32, width: i32, height: i32): usize {
  if (width <= 0 || height <= 0) return 0;
  const alpha = type == QUIC_TYPE_RGBA;
  const nch: u32 = type == QUIC_TYPE_GRAY ? 1 : 3;
  return 20 + usize(height) * rowBound(width, nch, alpha) + 16;
}

/**
 * Encodes the image at `inPtr` (rows `stride` bytes apart, top row first unless `topDown` is false, in
 * which case the rows are stored bottom-up and are read in reverse, as spice-server does) into `outPtr`.
 * Returns the byte length of the stream (a multiple of 4) or a negative QUIC_ERR_* code. The output
 * capacity check is conservative per row: capacity ≥ quicMaxEncodedSize always succeeds.
 */
export function quicEncode(type: i32, width: i32, height: i32, stride: i32, topDown: bool,
                           inPtr: usize, outPtr: usize, outCapacity: usize): isize {
  if (width <= 0 || height <= 0 || stride <= 0) return QUIC_ERR_BAD_ARGS;
  if (width > QUIC_MAX_WIDTH) return QUIC_ERR_TOO_WIDE;
  const first = topDown ? inPtr : inPtr + usize(height - 1) * usize(stride);
  const step: isize = topDown ? isize(stride) : -isize(stride);
  const outEnd = outPtr + outCapacity;
  if (outCapacity < 20) return QUIC_ERR_OUTPUT_TOO_SMALL;
  scratchBegin(width);
  const r = encodeType(type, width, height, stride, first, step, outPtr, outEnd);
  scratchEnd();
  return r;
}

function encodeType(type: i32, width: i32, height: i32, stride: i32, first: usize, step: isize, outPtr: usize, outEnd: usize): isize {
  switch (type) {
    case QUIC_TYPE_RGB32:
      if (stride < width * 4) return QUIC_ERR_BAD_ARGS;
      return encodeImage<PxRgb32, Bpc8, PassRgb>(width, height, first, step, outPtr, outEnd);
    case QUIC_TYPE_RGBA:
      if (stride < width * 4) return QUIC_ERR_BAD_ARGS;
      return encodeImage<PxRgba, Bpc8, PassRgb>(width, height, first, step, outPtr, outEnd);
    case QUIC_TYPE_RGB24:
      if (stride < width * 3) return QUIC_ERR_BAD_ARGS;
      return encodeImage<PxRgb24, Bpc8, PassRgb>(width, height, first, step, outPtr, outEnd);
    case QUIC_TYPE_RGB16:
      if (stride < width * 2) return QUIC_ERR_BAD_ARGS;
      return encodeImage<PxRgb16, Bpc5, PassRgb>(width, height, first, step, outPtr, outEnd);
    case QUIC_TYPE_GRAY:
      if (stride < width) return QUIC_ERR_BAD_ARGS;
      return encodeImage<PxGray, Bpc8, PassGray>(width, height, first, step, outPtr, outEnd);
  }
  return QUIC_ERR_BAD_ARGS;
}
