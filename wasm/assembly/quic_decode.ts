// QUIC decoder (spice-common quic.c streams; model and tables in quic_model.ts).
//
// Decoding is serial: each channel's code parameter depends on the previous symbol, and each pixel's
// prediction on the pixel to its left. Rows are decoded as packed words (one byte per channel) straight
// into the output for the 4-byte layouts, through a scratch row otherwise. Every input word read, every
// output write and every table index is bounded: corrupt or truncated streams give a negative error
// code (or some pixels), never an access outside the caller's buffers.

import {
  QUIC_MAGIC, QUIC_VERSION, QUIC_MAX_WIDTH, QUIC_MAX_PIXELS,
  QUIC_TYPE_GRAY, QUIC_TYPE_RGB16, QUIC_TYPE_RGB24, QUIC_TYPE_RGB32, QUIC_TYPE_RGBA,
  Bpc8, Bpc5, PxRgb32, PxRgba, PxRgb24, PxRgb16, PxGray, PassRgb, PassGray, PassAlpha,
  BESTCODE, MELC_BITS, MELC_LAST, STATE_MAIN, STATE_ALPHA, S_WAITCNT, S_SEED, S_TRIGGER, S_WMIDX, S_WMILEFT,
  S_MELCSTATE, WM_MAX, CTX_MAIN, CTX_ALPHA, ROW_A, ROW_B, scratchBegin, scratchEnd,
  resetModel, nextWaitMask, nextRand, updateModel, avgFloor4, values4,
} from "./quic_model";
import { ERR_ARGS, ERR_OUTPUT, ERR_TOO_WIDE, ERR_MAGIC, ERR_VERSION, ERR_SIZE, ERR_TRUNCATED, ERR_CORRUPT, ERR_TYPE } from "./errors";

// Bit reader: the next bits are the most significant of a 64-bit buffer holding `rBits` (32..64) valid
// bits; whole little-endian words are appended as it drains. Past the end of the input it reads zeros.
let rAcc: u64 = 0;
let rBits: u32 = 0;
let rPos: usize = 0;
let rEnd: usize = 0;

/** The word at `pos`, with bytes at or past `end` read as zero. */
function tailWord(pos: usize, end: usize): u32 {
  let w: u32 = 0;
  for (let k: usize = 0; k < 4; k++) {
    if (pos + k < end) w |= u32(load<u8>(pos + k)) << u32(k << 3);
  }
  return w;
}

@inline function readWord(pos: usize, end: usize): u32 {
  return pos + 4 <= end ? load<u32>(pos) : tailWord(pos, end);
}

/**
 * Decodes pixels [i, end) of one wait-mask segment of the current row for the channels of pass P.
 * `cur`/`prev` are rows of packed words (prev = 0 on the first row), `ctx` the pass's context row.
 * Returns 0 or a negative error code.
 */
function decodeSegment<F, P>(st: usize, i: i32, end: i32, waitmask: u32, cur: usize, prev: usize, ctx: usize): i32 {
  const f = changetype<F>(0);
  const p = changetype<P>(0);
  const pm = p.mask;
  const dec = f.dec;
  const bucket = f.bucket;
  const best0 = BESTCODE + p.ch0 * 16;
  const best1 = BESTCODE + p.ch1 * 16;
  const best2 = BESTCODE + p.ch2 * 16;
  const trigger = load<u32>(st + S_TRIGGER);
  const inEnd = rEnd;
  let acc = rAcc;
  let bits = rBits;
  let pos = rPos;
  let stop = i + i32(load<u32>(st + S_WAITCNT));
  let runIndex = 0;
  let mstate = load<u32>(st + S_MELCSTATE);
  let ctxv = load<u32>(ctx + (usize(i) << 2) - 4);
  let a: u32 = i > 0 ? load<u32>(cur + (usize(i) << 2) - 4) & pm : 0;
  let err: i32 = 0;
  while (i < end) {
    if (prev != 0 && i > 2 && runIndex != i) {
      const o = usize(i) << 2;
      if (((load<u32>(prev + o - 4) ^ load<u32>(prev + o)) & pm) == 0 && ((load<u32>(cur + o - 8) & pm) ^ a) == 0) {
        // Run mode: MELCODE run length, then copies of the left pixel.
        runIndex = i;
        const limit = u32(end - i);
        let n: u32 = 0;
        let mbits = u32(load<u8>(MELC_BITS + mstate));
        while (true) {
          const ones = clz<u32>(~u32(acc >> 32));
          const k = ones < 24 ? ones : 24;
          for (let h: u32 = 0; h < k; h++) {
            n += u32(1) << mbits;
            if (mstate < u32(MELC_LAST)) {
              mstate++;
              mbits = u32(load<u8>(MELC_BITS + mstate));
            }
          }
          const eat = ones < 24 ? k + 1 : 24;
          acc <<= u64(eat);
          bits -= eat;
          if (bits < 32) {
            acc |= u64(readWord(pos, inEnd)) << u64(32 - bits);
            bits += 32;
            pos += 4;
          }
          if (ones < 24 || n > limit) break;
        }
        if (mbits > 0) {
          n += u32(acc >> 32) >> (32 - mbits);
          acc <<= u64(mbits);
          bits -= mbits;
          if (bits < 32) {
            acc |= u64(readWord(pos, inEnd)) << u64(32 - bits);
            bits += 32;
            pos += 4;
          }
        }
        if (mstate > 0) mstate--;
        if (n > limit) {
          err = ERR_CORRUPT;
          break;
        }
        const runEnd = i + i32(n);
        for (let j = i; j < runEnd; j++) {
          const q = cur + (usize(j) << 2);
          if (pm == 0xff000000) store<u32>(q, (load<u32>(q) & 0x00ffffff) | a);
          else store<u32>(q, a);
        }
        i = runEnd;
        if (i == end) {
          stop = stop - runIndex + end;
          break;
        }
        stop += i32(n);
        ctxv = load<u32>(ctx + (usize(i) << 2) - 4);
        continue;
      }
    }
    // Prediction: left on the first row, above in the first column, else floor((left + above) / 2).
    let pred: u32;
    if (prev == 0) {
      pred = a;
    } else {
      const b = load<u32>(prev + (usize(i) << 2)) & pm;
      pred = i > 0 ? avgFloor4(a, b) : b;
    }
    let sv: u32 = 0;
    // One block per channel, written out: each one's shift and model row are constants, and its bits
    // are refilled in place, with no loop or channel index in the hot path.
    {
      const c = (ctxv >> p.sh0) & 0xff;
      const l = u32(load<u16>(best0 + (usize(load<u8>(bucket + c)) << 1))) >> 8;
      const w = u32(acc >> 32);
      const d = dec + (l << 4);
      let s: u32, n: u32;
      if (w > load<u32>(d)) {
        const z = clz<u32>(w);
        n = z + 1 + l;
        s = (z << l) | ((w >> (32 - n)) & ((u32(1) << l) - 1));
      } else {
        n = load<u32>(d, 8);
        s = load<u32>(d, 4) + ((w >> (32 - n)) & load<u32>(d, 12));
      }
      acc <<= u64(n);
      bits -= n;
      if (bits < 32) {
        acc |= u64(readWord(pos, inEnd)) << u64(32 - bits);
        bits += 32;
        pos += 4;
      }
      sv = (s & 0xff) << p.sh0;
    }
    if (p.nch > 1) {
      const c = (ctxv >> p.sh1) & 0xff;
      const l = u32(load<u16>(best1 + (usize(load<u8>(bucket + c)) << 1))) >> 8;
      const w = u32(acc >> 32);
      const d = dec + (l << 4);
      let s: u32, n: u32;
      if (w > load<u32>(d)) {
        const z = clz<u32>(w);
        n = z + 1 + l;
        s = (z << l) | ((w >> (32 - n)) & ((u32(1) << l) - 1));
      } else {
        n = load<u32>(d, 8);
        s = load<u32>(d, 4) + ((w >> (32 - n)) & load<u32>(d, 12));
      }
      acc <<= u64(n);
      bits -= n;
      if (bits < 32) {
        acc |= u64(readWord(pos, inEnd)) << u64(32 - bits);
        bits += 32;
        pos += 4;
      }
      sv |= (s & 0xff) << p.sh1;
    }
    if (p.nch > 2) {
      const c = (ctxv >> p.sh2) & 0xff;
      const l = u32(load<u16>(best2 + (usize(load<u8>(bucket + c)) << 1))) >> 8;
      const w = u32(acc >> 32);
      const d = dec + (l << 4);
      let s: u32, n: u32;
      if (w > load<u32>(d)) {
        const z = clz<u32>(w);
        n = z + 1 + l;
        s = (z << l) | ((w >> (32 - n)) & ((u32(1) << l) - 1));
      } else {
        n = load<u32>(d, 8);
        s = load<u32>(d, 4) + ((w >> (32 - n)) & load<u32>(d, 12));
      }
      acc <<= u64(n);
      bits -= n;
      if (bits < 32) {
        acc |= u64(readWord(pos, inEnd)) << u64(32 - bits);
        bits += 32;
        pos += 4;
      }
      sv |= (s & 0xff) << p.sh2;
    }
    store<u32>(ctx + (usize(i) << 2), sv);
    const val = values4<F>(sv, pred) & pm;
    const q = cur + (usize(i) << 2);
    if (pm == 0xff000000) store<u32>(q, (load<u32>(q) & 0x00ffffff) | val);
    else store<u32>(q, val);
    if (i == stop) {
      updateModel<F>(p.ch0, (ctxv >> p.sh0) & 0xff, (sv >> p.sh0) & 0xff, trigger);
      if (p.nch > 1) updateModel<F>(p.ch1, (ctxv >> p.sh1) & 0xff, (sv >> p.sh1) & 0xff, trigger);
      if (p.nch > 2) updateModel<F>(p.ch2, (ctxv >> p.sh2) & 0xff, (sv >> p.sh2) & 0xff, trigger);
      stop = i + 1 + i32(nextRand(st + S_SEED) & waitmask);
    }
    ctxv = sv;
    a = val;
    i++;
  }
  store<u32>(st + S_WAITCNT, u32(stop - end));
  store<u32>(st + S_MELCSTATE, mstate);
  rAcc = acc;
  rBits = bits;
  rPos = pos;
  return err;
}

/** One row of one pass, split at the wait-mask schedule's boundaries. */
function decodeRow<F, P>(st: usize, width: i32, cur: usize, prev: usize, ctx: usize): i32 {
  let pos = 0;
  let left = width;
  while (load<u32>(st + S_WMIDX) < WM_MAX && i32(load<u32>(st + S_WMILEFT)) <= left) {
    const seg = i32(load<u32>(st + S_WMILEFT));
    if (seg > 0) {
      const e = decodeSegment<F, P>(st, pos, pos + seg, (u32(1) << load<u32>(st + S_WMIDX)) - 1, cur, prev, ctx);
      if (e < 0) return e;
      left -= seg;
      pos += seg;
    }
    nextWaitMask(st);
  }
  if (left > 0) {
    const e = decodeSegment<F, P>(st, pos, pos + left, (u32(1) << load<u32>(st + S_WMIDX)) - 1, cur, prev, ctx);
    if (e < 0) return e;
    if (load<u32>(st + S_WMIDX) < WM_MAX) store<u32>(st + S_WMILEFT, load<u32>(st + S_WMILEFT) - u32(left));
  }
  return 0;
}

function decodeImage<T, F, P>(width: i32, height: i32, body: usize, bodyEnd: usize, out: usize, stride: usize): i32 {
  const t = changetype<T>(0);
  resetModel(changetype<F>(0).bpc);
  rPos = body;
  rEnd = bodyEnd;
  rAcc = (u64(readWord(rPos, rEnd)) << 32) | u64(readWord(rPos + 4, rEnd));
  rBits = 64;
  rPos += 8;
  const limitBits = u64(bodyEnd - body) << 3;
  const direct = t.bpp == 4;
  let prev: usize = 0;
  for (let y = 0; y < height; y++) {
    const row = out + usize(y) * stride;
    const cur = direct ? row : ((y & 1) != 0 ? ROW_B : ROW_A);
    store<u32>(CTX_MAIN - 4, y == 0 ? 0 : load<u32>(CTX_MAIN));
    let e = decodeRow<F, P>(STATE_MAIN, width, cur, prev, CTX_MAIN);
    if (e < 0) return e;
    if (t.alpha) {
      store<u32>(CTX_ALPHA - 4, y == 0 ? 0 : load<u32>(CTX_ALPHA));
      e = decodeRow<Bpc8, PassAlpha>(STATE_ALPHA, width, cur, prev, CTX_ALPHA);
      if (e < 0) return e;
    }
    if (!direct) {
      for (let x = 0; x < width; x++) t.store(row + usize(x) * t.bpp, load<u32>(cur + (usize(x) << 2)));
    }
    // More bits used than the stream holds: it was truncated (zeros were read past its end).
    if ((u64(rPos - body) << 3) - u64(rBits) > limitBits) return ERR_TRUNCATED;
    prev = cur;
  }
  return 0;
}

@inline function bytesPerPixel(type: i32): i32 {
  return type == QUIC_TYPE_GRAY ? 1 : type == QUIC_TYPE_RGB16 ? 2 : type == QUIC_TYPE_RGB24 ? 3 : 4;
}

/**
 * Reads and checks a stream's header. On success writes { type, width, height } (3 × u32) at `infoPtr`
 * and returns 0; otherwise a negative ERR_* code (errors.ts).
 */
export function quicDecodeHeader(inPtr: usize, inLen: usize, infoPtr: usize): i32 {
  if (inLen < 20) return ERR_TRUNCATED;
  if (load<u32>(inPtr) != QUIC_MAGIC) return ERR_MAGIC;
  if (load<u32>(inPtr, 4) != QUIC_VERSION) return ERR_VERSION;
  const type = load<i32>(inPtr, 8);
  const width = load<i32>(inPtr, 12);
  const height = load<i32>(inPtr, 16);
  if (type < QUIC_TYPE_GRAY || type > QUIC_TYPE_RGBA) return ERR_TYPE;
  if (width <= 0 || height <= 0 || u64(width) * u64(height) > QUIC_MAX_PIXELS) return ERR_SIZE;
  store<u32>(infoPtr, u32(type));
  store<u32>(infoPtr, u32(width), 4);
  store<u32>(infoPtr, u32(height), 8);
  return 0;
}

/**
 * Decodes the stream at `inPtr` (`inLen` bytes) into `outPtr`: rows top-down, `outStride` bytes apart,
 * in the stream's own pixel layout (rgb32 padding written as 0). Returns 0 or a negative ERR_* code (errors.ts);
 * on error the output holds whatever was decoded so far.
 */
export function quicDecode(inPtr: usize, inLen: usize, outPtr: usize, outCapacity: usize, outStride: usize): i32 {
  const info = memory.data(16);
  const h = quicDecodeHeader(inPtr, inLen, info);
  if (h < 0) return h;
  const type = load<i32>(info);
  const width = load<i32>(info, 4);
  const height = load<i32>(info, 8);
  if (width > QUIC_MAX_WIDTH) return ERR_TOO_WIDE;
  const rowBytes = u64(width) * u64(bytesPerPixel(type));
  if (u64(outStride) < rowBytes) return ERR_ARGS;
  if (u64(height - 1) * u64(outStride) + rowBytes > u64(outCapacity)) return ERR_OUTPUT;
  scratchBegin();
  const body = inPtr + 20;
  const end = inPtr + inLen;
  let r: i32 = ERR_TYPE;
  switch (type) {
    case QUIC_TYPE_RGB32: r = decodeImage<PxRgb32, Bpc8, PassRgb>(width, height, body, end, outPtr, outStride); break;
    case QUIC_TYPE_RGBA: r = decodeImage<PxRgba, Bpc8, PassRgb>(width, height, body, end, outPtr, outStride); break;
    case QUIC_TYPE_RGB24: r = decodeImage<PxRgb24, Bpc8, PassRgb>(width, height, body, end, outPtr, outStride); break;
    case QUIC_TYPE_RGB16: r = decodeImage<PxRgb16, Bpc5, PassRgb>(width, height, body, end, outPtr, outStride); break;
    case QUIC_TYPE_GRAY: r = decodeImage<PxGray, Bpc8, PassGray>(width, height, body, end, outPtr, outStride); break;
  }
  scratchEnd();
  return r;
}
