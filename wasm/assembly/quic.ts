// QUIC encoder, byte-exact with spice-common's quic.c (its model and tables: quic_model.ts).
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
  QUIC_MAGIC, QUIC_VERSION, QUIC_MAX_WIDTH,
  QUIC_TYPE_GRAY, QUIC_TYPE_RGB16, QUIC_TYPE_RGB24, QUIC_TYPE_RGB32, QUIC_TYPE_RGBA,
  Bpc8, Bpc5, PxRgb32, PxRgba, PxRgb24, PxRgb16, PxGray, PassRgb, PassGray, PassAlpha,
  BESTCODE, MELC_BITS, MELC_LAST, STATE_MAIN, STATE_ALPHA, S_WAITCNT, S_SEED, S_TRIGGER, S_WMIDX, S_WMILEFT,
  S_MELCSTATE, WM_MAX, CTX_MAIN, CTX_ALPHA, ROW_A, FLAGS, FLAG_ROW, scratchBegin, scratchEnd, SCR, OFF_ROW_B,
  resetModel, nextWaitMask, nextRand, updateBucket, avgFloor4, symbols4, buckets4, ROW_B, OFF_CAND_MAIN, OFF_CAND_ALPHA,
  OFF_CTX_MAIN, OFF_CTX_ALPHA, CODE8, CLEN8, CODE5, CLEN5,
} from "./quic_model";
import { ERR_ARGS, ERR_OUTPUT, ERR_TOO_WIDE } from "./errors";

// Bit writer: a 64-bit accumulator holding `wBits` (< 32 between codes) pending bits at its top; whole
// 32-bit words are stored little endian as soon as they fill up.
// Lives in globals between segments and in locals inside the coding loop.
let wAcc: u64 = 0;
let wBits: u32 = 0;
let wOut: usize = 0;

// Flag rows (one byte per pixel): "equals left neighbour" for this and the previous row, per pass,
// and "run mode may start here" per pass.
let CAND_MAIN: usize = 0;
let CAND_ALPHA: usize = 0;
let SYM: usize = 0;

/** SIMD constants: 0x01 bytes, 0x0f bytes, floor(log2) of a low nibble, 4 + floor(log2) of a high
 *  nibble (0 for 0), the 24-bit pixel mask, the bucket bias, the alpha mask. */
const SIMD_CONST: usize = memory.data<u8>([
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
  0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
  0, 4, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7,
  255, 255, 255, 0, 255, 255, 255, 0, 255, 255, 255, 0, 255, 255, 255, 0,
  0x20, 0x10, 0x00, 0x30, 0x20, 0x10, 0x00, 0x30, 0x20, 0x10, 0x00, 0x30, 0x20, 0x10, 0x00, 0x30,
  0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255,
], 16);

/** Four 0/1 flag bytes for each 4-bit lane mask. */
const FLAG_BYTES: usize = memory.data<u32>([
  0x00000000, 0x00000001, 0x00000100, 0x00000101, 0x00010000, 0x00010001, 0x00010100, 0x00010101,
  0x01000000, 0x01000001, 0x01000100, 0x01000101, 0x01010000, 0x01010001, 0x01010100, 0x01010101,
]);
let BKT: usize = 0;

/**
 * Step 1 for row `cur` (previous row `prev`, 0 on the first row): symbols into SYM, their context
 * buckets (as model indices, see PxRgb32.bias) into BKT, equal-left flags
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
      const sv = symbols4<F>(c, a);
      store<u32>(SYM + (usize(x) << 2), sv);
      store<u32>(BKT + (usize(x) << 2), buckets4<F>(sv, t.bias));
      const d = c ^ a;
      store<u8>(eq + x, u8(x > 0 && (d & mainMask) == 0));
      if (t.alpha) store<u8>(eqA + x, u8(x > 0 && (d >> 24) == 0));
      a = c;
    }
    memory.fill(CAND_MAIN, 0, usize(width) << 2);
    if (t.alpha) memory.fill(CAND_ALPHA, 0, usize(width) << 2);
    return;
  }
  // x = 0 predicts from above only.
  let a = t.load(cur);
  const sv0 = symbols4<F>(a, t.load(prev));
  store<u32>(SYM, sv0);
  store<u32>(BKT, buckets4<F>(sv0, t.bias));
  store<u8>(eq, 0);
  if (t.alpha) store<u8>(eqA, 0);
  let x = 1;
  if (bpp == 4) {
    // Four pixels per step; residuals in every byte, equality per pixel. Constants come from memory so
    // that the JIT keeps them in registers instead of rebuilding them in every iteration.
    const one = v128.load(SIMD_CONST);
    const nib = v128.load(SIMD_CONST, 16);
    const lowLog = v128.load(SIMD_CONST, 32);
    const highLog = v128.load(SIMD_CONST, 48);
    const pad = v128.load(SIMD_CONST, 64);
    const bias = v128.load(SIMD_CONST, 80);
    const alphaMask = v128.load(SIMD_CONST, 96);
    const zero = i32x4.splat(0);
    const sym = SYM;
    const bkt = BKT;
    for (; x + 4 <= width; x += 4) {
      const o = usize(x) << 2;
      let c = v128.load(cur + o);
      let l = v128.load(cur + o - 4);
      const u = v128.load(prev + o);
      if (!t.alpha) {
        c = v128.and(c, pad);
        l = v128.and(l, pad);
      }
      // floor((l+u)/2) = rounding average − ((l^u)&1)
      const pred = i8x16.sub(i8x16.avgr_u(l, u), v128.and(v128.xor(l, u), one));
      const r = i8x16.sub(c, pred);
      const sv = v128.xor(i8x16.add(r, r), i8x16.lt_s(r, zero));
      v128.store(sym + o, sv);
      // bucket = floor(log2(s + 1)) capped at 7, from the two nibbles of min(s + 1, 255)
      const s1 = i8x16.add_sat_u(sv, one);
      const hi = v128.and(i16x8.shr_u(s1, 4), nib);
      const lo = v128.and(s1, nib);
      const bk = i8x16.max_u(i8x16.swizzle(highLog, hi), i8x16.swizzle(lowLog, lo));
      v128.store(bkt + o, i32x4.add(i8x16.add(bk, bk), bias));
      const d = v128.xor(c, l);
      const e = i32x4.bitmask(i32x4.eq(t.alpha ? v128.and(d, pad) : d, zero));
      store<u32>(eq + x, load<u32>(FLAG_BYTES + (usize(e) << 2)));
      if (t.alpha) {
        const ea = i32x4.bitmask(i32x4.eq(v128.and(d, alphaMask), zero));
        store<u32>(eqA + x, load<u32>(FLAG_BYTES + (usize(ea) << 2)));
      }
    }
    a = t.load(cur + usize(x - 1) * bpp);
  }
  for (; x < width; x++) {
    const c = t.load(cur + usize(x) * bpp);
    const b = t.load(prev + usize(x) * bpp);
    const sv = symbols4<F>(c, avgFloor4(a, b));
    store<u32>(SYM + (usize(x) << 2), sv);
    store<u32>(BKT + (usize(x) << 2), buckets4<F>(sv, t.bias));
    const d = c ^ a;
    store<u8>(eq + x, u8((d & mainMask) == 0));
    if (t.alpha) store<u8>(eqA + x, u8((d >> 24) == 0));
    a = c;
  }
  candidates(CAND_MAIN, eq, eqPrev, width);
  if (t.alpha) candidates(CAND_ALPHA, eqA, eqAPrev, width);
}

/** cand[x] (a word per pixel) = x > 2 && prev[x−1] == prev[x] && cur[x−2] == cur[x−1]. */
function candidates(cand: usize, eq: usize, eqPrev: usize, width: i32): void {
  let x = 0;
  for (; x + 8 <= width; x += 8) {
    // x = 0 reads eq[−1]: any byte, cleared below with x = 1, 2.
    const m = i16x8.extend_low_i8x16_u(v128.and(v128.load64_zero(eqPrev + x), v128.load64_zero(eq + x - 1)));
    v128.store(cand + (usize(x) << 2), i32x4.extend_low_i16x8_u(m));
    v128.store(cand + (usize(x) << 2), i32x4.extend_high_i16x8_u(m), 16);
  }
  for (; x < width; x++) store<u32>(cand + (usize(x) << 2), u32(load<u8>(eqPrev + x) & (x > 0 ? load<u8>(eq + x - 1) : 0)));
  store<u32>(cand, 0);
  if (width > 1) store<u32>(cand, 0, 4);
  if (width > 2) store<u32>(cand, 0, 8);
}

/** Appends the `n` low bits of `v` (n ≤ 32) through the globals (used outside the hot loop). */
function putBits(v: u32, n: u32): void {
  wAcc |= u64(v) << u64(64 - wBits - n);
  wBits += n;
  if (wBits >= 32) {
    store<u32>(wOut, u32(wAcc >> 32));
    wAcc <<= 32;
    wBits -= 32;
    wOut += 4;
  }
}

// Rarely used segment parameters, kept out of the coding loop's registers.
let segState: usize = 0;
let segWaitmask: u32 = 0;
let segEq: usize = 0;
let segQ: usize = 0;
let segQStop: usize = 0;

/** Codes a run of `n` pixels (MELCODE) through the writer globals; updates the run state of `st`. */
function codeRun(st: usize, n: u32): void {
  let mstate = load<u32>(st + S_MELCSTATE);
  let mbits = u32(load<u8>(MELC_BITS + mstate));
  let hits: u32 = 0;
  // A 1 per whole "order" 2^mbits of the current state (moving the state up), then 0 and the remainder.
  while (n >= (u32(1) << mbits)) {
    n -= u32(1) << mbits;
    hits++;
    if (mstate < u32(MELC_LAST)) {
      mstate++;
      mbits = u32(load<u8>(MELC_BITS + mstate));
    }
  }
  while (hits > 16) {
    putBits(0xffff, 16);
    hits -= 16;
  }
  putBits((((u32(1) << hits) - 1) << (mbits + 1)) | n, hits + mbits + 1);
  if (mstate > 0) mstate--;
  store<u32>(st + S_MELCSTATE, mstate);
}

/** Model update at the sampled pixel at `q`: every channel's context bucket with the pixel's symbol. */
function updateAt<F, P>(q: usize): u32 {
  const p = changetype<P>(0);
  const st = segState;
  const trigger = load<u32>(st + S_TRIGGER);
  const ctx = q - 4 + p.ctxOff;
  updateBucket<F>(u32(load<u8>(ctx + (p.sh0 >> 3))) >> 1, u32(load<u8>(q + (p.sh0 >> 3))), trigger);
  if (p.nch > 1) updateBucket<F>(u32(load<u8>(ctx + (p.sh1 >> 3))) >> 1, u32(load<u8>(q + (p.sh1 >> 3))), trigger);
  if (p.nch > 2) updateBucket<F>(u32(load<u8>(ctx + (p.sh2 >> 3))) >> 1, u32(load<u8>(q + (p.sh2 >> 3))), trigger);
  return 1 + (nextRand(st + S_SEED) & segWaitmask);
}

/** Length of the run of pixels equal to their left neighbour from `i` (< end). */
function runLength(i: i32, end: i32): i32 {
  const eq = segEq;
  let j = i;
  while (j + 8 <= end) {
    const w = load<u64>(eq + j);
    if (w != 0x0101010101010101) return j + i32(ctz<u64>(~w & 0x0101010101010101) >> 3) - i;
    j += 8;
  }
  while (j < end && load<u8>(eq + j) != 0) j++;
  return j - i;
}

// Row and table accesses with constant offsets from the pixel's address q (immediate offsets in the
// generated code, so the loop needs a single pointer). `k` is the channel's index in the pass.

/** Context byte (bucket × 2 + channel offset) of channel k for the pixel at q: the previous position's. */
@inline function ctxByte<P>(q: usize, k: i32): u32 {
  const p = changetype<P>(0);
  if (p.alpha) return u32(load<u8>(q, OFF_CTX_ALPHA - 4 + 3));
  if (p.nch == 1) return u32(load<u8>(q, OFF_CTX_MAIN - 4));
  if (k == 0) return u32(load<u8>(q, OFF_CTX_MAIN - 4 + 2));
  if (k == 1) return u32(load<u8>(q, OFF_CTX_MAIN - 4 + 1));
  return u32(load<u8>(q, OFF_CTX_MAIN - 4));
}

/** Symbol of channel k of the pixel at q. */
@inline function symByte<P>(q: usize, k: i32): u32 {
  const p = changetype<P>(0);
  if (p.alpha) return u32(load<u8>(q, 3));
  if (p.nch == 1) return u32(load<u8>(q));
  if (k == 0) return u32(load<u8>(q, 2));
  if (k == 1) return u32(load<u8>(q, 1));
  return u32(load<u8>(q));
}

@inline function candAt<P>(q: usize): u32 {
  return changetype<P>(0).alpha ? load<u32>(q, OFF_CAND_ALPHA) : load<u32>(q, OFF_CAND_MAIN);
}

@inline function clearCand<P>(q: usize): void {
  if (changetype<P>(0).alpha) store<u32>(q, 0, OFF_CAND_ALPHA);
  else store<u32>(q, 0, OFF_CAND_MAIN);
}

/** Context word (bucket bytes) for the pixel at q: the previous position's entry of the context row. */
@inline function ctxWord<P>(q: usize): u32 {
  return changetype<P>(0).alpha ? load<u32>(q, OFF_CTX_ALPHA - 4) : load<u32>(q, OFF_CTX_MAIN - 4);
}

/** Stores the pixel at q's bucket word as the context of the next position and returns it. */
@inline function keepCtxWord<P>(q: usize): u32 {
  const bv = load<u32>(q, OFF_ROW_B);
  if (changetype<P>(0).alpha) store<u32>(q, bv, OFF_CTX_ALPHA);
  else store<u32>(q, bv, OFF_CTX_MAIN);
  return bv;
}

/** Row of CODE/CLEN for the context byte c: best code × 256. */
@inline function bestRow(c: u32): u32 {
  return u32(load<u16>(usize(c), BESTCODE));
}

@inline function codeOf<F>(i: u32): u64 {
  return changetype<F>(0).bpc == 8 ? u64(load<u8>(usize(i), CODE8)) : u64(load<u8>(usize(i), CODE5));
}

@inline function lenOf<F>(i: u32): u32 {
  return changetype<F>(0).bpc == 8 ? u32(load<u8>(usize(i), CLEN8)) : u32(load<u8>(usize(i), CLEN5));
}

/** Codes the pixel at q one codeword at a time through the writer globals (when the three may not fit
 *  in the accumulator together). Recomputes the codewords so that nothing is live across the call. */
function codePixelSlow<F, P>(q: usize): void {
  for (let k = 0; k < 3; k++) {
    const c = bestRow(ctxByte<P>(q, k)) | symByte<P>(q, k);
    putBits(u32(codeOf<F>(c)), lenOf<F>(c));
  }
}

/**
 * Step 2 for pixels [i, end) of the current row, one wait-mask segment: codes the symbols (SCR row A)
 * with the family F for the channels of pass P. Contexts are the bucket words (row B) of the last coded
 * pixel at each position, kept in the pass's context row; the pass's candidate row flags where run
 * mode may start. `st` is the schedule state.
 */
function codeSegment<F, P>(st: usize, i: i32, end: i32, waitmask: u32, eq: usize): void {
  const p = changetype<P>(0);
  segState = st;
  segWaitmask = waitmask;
  segEq = eq;
  const base = SCR;
  let acc = wAcc;
  let bits = wBits;
  let out = wOut;
  // Pixel positions as addresses in the rows: q = base + 4·i.
  let q = base + (usize(i) << 2);
  const qEnd = base + (usize(end) << 2);
  let qStop = q + (usize(load<u32>(st + S_WAITCNT)) << 2);
  let ctxv = ctxWord<P>(q);
  while (q < qEnd) {
    if (candAt<P>(q) != 0) {
      // Run mode: the pixels equal to their left neighbour are not coded, only their count. The
      // flag is cleared so that the test cannot fire again here after a run of length 0.
      clearCand<P>(q);
      wAcc = acc;
      wBits = bits;
      wOut = out;
      segQ = q;
      segQStop = qStop;
      const n = runLength(i32((q - base) >> 2), end);
      codeRun(segState, u32(n));
      acc = wAcc;
      bits = wBits;
      out = wOut;
      const qRun = segQ;
      q = qRun + (usize(n) << 2);
      qStop = segQStop;
      if (q == qEnd) {
        qStop = qStop - qRun + qEnd; // leaves waitcnt = stop − run start below
        break;
      }
      qStop += usize(n) << 2;
      ctxv = ctxWord<P>(q);
      continue;
    }
    // Codeword of each channel: CODE/CLEN[best code of the context's bucket][symbol]; the context
    // bytes (bucket × 2 + channel offset) are the last coded pixel's, kept in the context row.
    const sv = load<u32>(q);
    const c0 = bestRow((ctxv >> p.sh0) & 0xff) | ((sv >> p.sh0) & 0xff);
    const n0 = lenOf<F>(c0);
    if (p.nch == 1) {
      acc |= codeOf<F>(c0) << u64(64 - bits - n0);
      bits += n0;
    } else {
      const c1 = bestRow((ctxv >> p.sh1) & 0xff) | ((sv >> p.sh1) & 0xff);
      const c2 = bestRow((ctxv >> p.sh2) & 0xff) | ((sv >> p.sh2) & 0xff);
      const n1 = lenOf<F>(c1);
      const n2 = lenOf<F>(c2);
      const total = n0 + n1 + n2;
      if (total <= 32) {
        // The three codewords fit below the ≤ 31 pending bits: one flush for the pixel.
        const v = (((codeOf<F>(c0) << n1) | codeOf<F>(c1)) << n2) | codeOf<F>(c2);
        acc |= v << u64(64 - bits - total);
        bits += total;
      } else {
        wAcc = acc;
        wBits = bits;
        wOut = out;
        segQ = q;
        segQStop = qStop;
        codePixelSlow<F, P>(q);
        acc = wAcc;
        bits = wBits;
        out = wOut;
        q = segQ;
        qStop = segQStop;
      }
    }
    // Store the top word (complete or not); drop it from the accumulator only if it is complete.
    store<u64>(out, rotr<u64>(acc, 32));
    acc <<= u64(bits & 32);
    out += usize(bits >> 5) << 2;
    bits &= 31;
    ctxv = keepCtxWord<P>(q);
    if (q == qStop) {
      // Nothing stays live across the call: the JIT can keep the loop's state in registers.
      wAcc = acc;
      wBits = bits;
      wOut = out;
      segQ = q;
      const step = updateAt<F, P>(q);
      acc = wAcc;
      bits = wBits;
      out = wOut;
      q = segQ;
      qStop = q + (usize(step) << 2);
      ctxv = ctxWord<P>(q + 4);
    }
    q += 4;
  }
  store<u32>(st + S_WAITCNT, u32((qStop - qEnd) >> 2));
  wAcc = acc;
  wBits = bits;
  wOut = out;
}

/** Step 2 for a whole row: splits it at the wait-mask schedule's boundaries. */
function codeRow<F, P>(st: usize, width: i32, eq: usize): void {
  let pos = 0;
  let left = width;
  while (load<u32>(st + S_WMIDX) < WM_MAX && i32(load<u32>(st + S_WMILEFT)) <= left) {
    const seg = i32(load<u32>(st + S_WMILEFT));
    if (seg > 0) {
      codeSegment<F, P>(st, pos, pos + seg, (u32(1) << load<u32>(st + S_WMIDX)) - 1, eq);
      left -= seg;
      pos += seg;
    }
    nextWaitMask(st);
  }
  if (left > 0) {
    codeSegment<F, P>(st, pos, pos + left, (u32(1) << load<u32>(st + S_WMIDX)) - 1, eq);
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
  CAND_MAIN = SCR + OFF_CAND_MAIN;
  CAND_ALPHA = SCR + OFF_CAND_ALPHA;
  SYM = ROW_A;
  BKT = ROW_B;
  let prev: usize = 0;
  let row = first;
  for (let y = 0; y < height; y++) {
    if (wOut + bound > outEnd) return ERR_OUTPUT;
    const odd = (y & 1) != 0;
    const eq = odd ? EQ_MAIN_1 : EQ_MAIN_0;
    const eqPrev = odd ? EQ_MAIN_0 : EQ_MAIN_1;
    const eqA = odd ? EQ_ALPHA_1 : EQ_ALPHA_0;
    const eqAPrev = odd ? EQ_ALPHA_0 : EQ_ALPHA_1;
    prepareRow<T, F>(row, prev, width, eq, eqPrev, eqA, eqAPrev);
    // Context of pixel 0: pixel 0 of the previous row (nothing on the first row).
    // (symbol 0, i.e. bucket 0 of each channel).
    store<u32>(CTX_MAIN - 4, y == 0 ? t.bias : load<u32>(CTX_MAIN));
    codeRow<F, P>(STATE_MAIN, width, eq);
    if (t.alpha) {
      store<u32>(CTX_ALPHA - 4, y == 0 ? t.bias : load<u32>(CTX_ALPHA));
      codeRow<F, PassAlpha>(STATE_ALPHA, width, eqA);
    }
    prev = row;
    row = usize(isize(row) + step);
  }
  // Pad the last word, then one all-zero word.
  if (wBits > 0) {
    store<u32>(wOut, u32(wAcc >> 32));
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
 * Returns the byte length of the stream (a multiple of 4) or a negative ERR_* code (errors.ts). The output
 * capacity check is conservative per row: capacity ≥ quicMaxEncodedSize always succeeds.
 */
export function quicEncode(type: i32, width: i32, height: i32, stride: i32, topDown: bool,
                           inPtr: usize, outPtr: usize, outCapacity: usize): isize {
  if (width <= 0 || height <= 0 || stride <= 0) return ERR_ARGS;
  if (width > QUIC_MAX_WIDTH) return ERR_TOO_WIDE;
  const first = topDown ? inPtr : inPtr + usize(height - 1) * usize(stride);
  const step: isize = topDown ? isize(stride) : -isize(stride);
  const outEnd = outPtr + outCapacity;
  if (outCapacity < 20) return ERR_OUTPUT;
  scratchBegin();
  const r = encodeType(type, width, height, stride, first, step, outPtr, outEnd);
  scratchEnd();
  return r;
}

/** encodeImage for pixel kind T, after checking that rows of `width` pixels fit in `stride` bytes. */
@inline function encodeKind<T, F, P>(width: i32, height: i32, stride: i32, first: usize, step: isize, outPtr: usize, outEnd: usize): isize {
  if (stride < width * i32(changetype<T>(0).bpp)) return ERR_ARGS;
  return encodeImage<T, F, P>(width, height, first, step, outPtr, outEnd);
}

function encodeType(type: i32, width: i32, height: i32, stride: i32, first: usize, step: isize, outPtr: usize, outEnd: usize): isize {
  switch (type) {
    case QUIC_TYPE_RGB32: return encodeKind<PxRgb32, Bpc8, PassRgb>(width, height, stride, first, step, outPtr, outEnd);
    case QUIC_TYPE_RGBA: return encodeKind<PxRgba, Bpc8, PassRgb>(width, height, stride, first, step, outPtr, outEnd);
    case QUIC_TYPE_RGB24: return encodeKind<PxRgb24, Bpc8, PassRgb>(width, height, stride, first, step, outPtr, outEnd);
    case QUIC_TYPE_RGB16: return encodeKind<PxRgb16, Bpc5, PassRgb>(width, height, stride, first, step, outPtr, outEnd);
    case QUIC_TYPE_GRAY: return encodeKind<PxGray, Bpc8, PassGray>(width, height, stride, first, step, outPtr, outEnd);
  }
  return ERR_ARGS;
}
