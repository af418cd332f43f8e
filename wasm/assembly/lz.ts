// SPICE LZ encoder (the format of spice-common's lz.c), byte-exact with its single-chunk output.
//
// The image is coded as one segment of units (pixels, or packed bytes for palettes). The coder is
// FastLZ level 2 in spirit: a 13-bit DJB2 hash over three units finds one candidate, runs of equal
// units are found before the hash is consulted, and literals are grouped in runs of up to 32.
import {
  LZ_MAGIC, LZ_VERSION, LZ_RGB16, LZ_RGB24, LZ_RGB32, LZ_RGBA, LZ_XXXA, LZ_A8, LZ_PLT1_LE, MAX_COPY,
  KRgb32, KRgb24, KRgb16, KByte, KAlpha, finishLiterals, checkSizes, headerStride, unitCount,
  passBound, packRows, putBE32, rgb32RunEnd, rgb32MatchEnd,
} from "./lz_common";
import { ERR_ARGS, ERR_OUTPUT } from "./errors";

const HASH_LOG: u32 = 13;
const HASH_SIZE: usize = 1 << HASH_LOG;
const HASH_MASK: u32 = (1 << HASH_LOG) - 1;
/** Distances below this take 13 bits; from it on, a far match adds two bytes. */
const MAX_DISTANCE: usize = 8191;
const MAX_FARDISTANCE: usize = 65535 + MAX_DISTANCE - 1;
const HEADER_BYTES: usize = 28;

/**
 * Hash table: the address of the last unit seen with each hash value. It lives in the work area at
 * the end of the caller's output region (see lzEncodeBound), so the module keeps no static state.
 */
let htab: usize = 0;
const HTAB_BYTES: usize = HASH_SIZE * 4;

/** Hash-table byte offsets of four consecutive positions (RGB32), computed together by hash4. */
const HBUF: usize = memory.data(32, 16);

function resetHash(base: usize): void {
  const v = i32x4.splat(<i32>base);
  for (let p = htab, e = htab + HASH_SIZE * 4; p < e; p += 16) v128.store(p, v);
}

/** Writes the match (distance already biased by −1) and returns the new output position. */
@inline function putMatch(op: usize, len: usize, distance: usize): usize {
  if (distance < MAX_DISTANCE) {
    if (len < 7) {
      store<u8>(op, <u8>((len << 5) + (distance >> 8)));
      store<u8>(op, <u8>distance, 1);
      return op + 2;
    }
    store<u8>(op, <u8>((7 << 5) + (distance >> 8)));
    op++;
    for (len -= 7; len >= 255; len -= 255) store<u8>(op++, 255);
    store<u8>(op, <u8>len);
    store<u8>(op, <u8>distance, 1);
    return op + 2;
  }
  distance -= MAX_DISTANCE;
  if (len < 7) {
    store<u8>(op, <u8>((len << 5) + 31));
    store<u8>(op, 255, 1);
    store<u8>(op, <u8>(distance >> 8), 2);
    store<u8>(op, <u8>distance, 3);
    return op + 4;
  }
  store<u8>(op, <u8>((7 << 5) + 31));
  op++;
  for (len -= 7; len >= 255; len -= 255) store<u8>(op++, 255);
  store<u8>(op, <u8>len);
  store<u8>(op, 255, 1);
  store<u8>(op, <u8>(distance >> 8), 2);
  store<u8>(op, <u8>distance, 3);
  return op + 4;
}

/**
 * Codes `n` units starting at `base` (contiguous) and returns the new output position.
 * Specialised per kind K at compile time.
 */
function compress<K>(base: usize, n: usize, op: usize): usize {
  const K = changetype<K>(0);
  const bpp = K.bpp;
  if (n < 4) {
    // too small for the coder: one literal run
    store<u8>(op++, <u8>(n - 1));
    for (let i: usize = 0; i < n; i++) op = K.emit(op, base + i * bpp);
    return op;
  }
  resetHash(base);

  let lastCopy = op;
  store<u8>(op++, <u8>(MAX_COPY - 1));
  op = K.emit(op, base);
  op = K.emit(op, base + bpp);
  let copy: u32 = 2;

  const end = base + n * bpp;
  const ipBound = end - 2 * bpp;
  const ipLimit = end - 6 * bpp;
  let ip = base + 2 * bpp;
  // HBUF holds the slot offsets of the positions hStart .. hStart + 3 (RGB32); a position below
  // ipLimit leaves room for hash4's 24-byte read. Unsigned, so the first use always refills.
  let hStart = end;
  let hLen: usize = 0;

  while (ip < ipLimit) {
    const anchor = ip;
    let distance: usize = 0;
    let matched = false;

    if (K.same(ip - bpp, ip) && K.same(ip, ip + bpp) && K.same(ip + bpp, ip + 2 * bpp)) {
      // a run: a match at distance 1, extended while units equal the one before the anchor
      const x = anchor + 2 * bpp;
      if (K.simd) {
        // ip ends one past the first unit from x on that differs from x (at most ipBound)
        ip = rgb32RunEnd(x, ipBound - bpp, load<u32>(x)) + bpp;
      } else {
        ip += 3 * bpp;
        while (ip < ipBound) {
          if (!K.same(ip - bpp, x)) break;
          ip += bpp;
        }
      }
      matched = true;
    } else {
      let slot: usize;
      if (K.simd) {
        let d = anchor - hStart;
        if (d >= hLen) {
          v128.store(HBUF, i32x4.shl(v128.and(K.hash4(anchor), i32x4.splat(HASH_MASK)), 2));
          hLen = 4 * bpp;
          if (anchor + 10 * bpp <= end) {
            v128.store(HBUF, i32x4.shl(v128.and(K.hash4(anchor + 4 * bpp), i32x4.splat(HASH_MASK)), 2), 16);
            hLen = 8 * bpp;
          }
          hStart = anchor;
          d = 0;
        }
        slot = htab + <usize>load<u32>(HBUF + d);
      } else {
        slot = htab + ((K.hash(ip) & HASH_MASK) << 2);
      }
      let ref = <usize>load<u32>(slot);
      distance = (anchor - ref) / bpp;
      store<u32>(slot, <u32>anchor);
      if (distance != 0 && distance < MAX_FARDISTANCE && K.same(ref, ip)) {
        ref += bpp;
        ip += bpp;
        let ok = true;
        if (K.cat >= 1) {
          ok = K.same(ref, ip);
          ref += bpp;
          ip += bpp;
        }
        if (K.cat == 2 && ok) {
          ok = K.same(ref, ip);
          ref += bpp;
          ip += bpp;
        }
        if (ok && distance >= MAX_DISTANCE) {
          // a far match must be one unit longer (two for one-byte units)
          ok = K.same(ref, ip);
          ref += bpp;
          ip += bpp;
          if (K.cat == 2 && ok) {
            ok = K.same(ref, ip);
            ref += bpp;
            ip += bpp;
          }
        }
        if (ok) {
          distance--;
          if (K.simd) {
            // ip ends one past the first mismatch (at most ipBound)
            const q = rgb32MatchEnd(ref, ip, ipBound);
            ip = q < ipBound ? q + bpp : ipBound;
          } else {
            while (ip < ipBound) {
              if (!K.same(ref, ip)) {
                ip += bpp;
                break;
              }
              ref += bpp;
              ip += bpp;
            }
          }
          matched = true;
        }
      }
    }

    if (matched) {
      if (copy != 0) store<u8>(lastCopy, <u8>(copy - 1));
      else op--; // drop the unused literal-run control byte
      copy = 0;
      ip -= 3 * bpp;
      let len = (<isize>ip - <isize>anchor) / <isize>bpp;
      if (K.cat == 0) len += 2;
      else if (K.cat == 1) len += 1;
      op = putMatch(op, <usize>len, distance);

      // refresh the hash at the last two units of the match
      if (K.cat == 2 || ip > anchor) store<u32>(htab + ((K.hash(ip) & HASH_MASK) << 2), <u32>ip);
      ip += bpp;
      if (K.cat != 0 || ip > anchor) store<u32>(htab + ((K.hash(ip) & HASH_MASK) << 2), <u32>ip);
      ip += bpp;
      lastCopy = op;
      store<u8>(op++, <u8>(MAX_COPY - 1));
      continue;
    }

    op = K.emit(op, anchor);
    ip = anchor + bpp;
    if (++copy == MAX_COPY) {
      copy = 0;
      lastCopy = op;
      store<u8>(op++, <u8>(MAX_COPY - 1));
    }
  }

  // the last units are literals
  return finishLiterals<K>(op, ip, end, copy, lastCopy);
}

function compressType(type: i32, base: usize, n: usize, op: usize): usize {
  switch (type) {
    case LZ_RGB32: return compress<KRgb32>(base, n, op);
    case LZ_RGBA: return compress<KAlpha>(base, n, compress<KRgb32>(base, n, op));
    case LZ_XXXA: return compress<KAlpha>(base, n, op);
    case LZ_RGB24: return compress<KRgb24>(base, n, op);
    case LZ_RGB16: return compress<KRgb16>(base, n, op);
    default: return compress<KByte>(base, n, op);
  }
}

/** Literal bytes per unit in the stream, summed over the passes of a type. */
function passesBound(type: i32, n: usize): usize {
  if (type == LZ_RGB32 || type == LZ_RGB24) return passBound(n, 3);
  if (type == LZ_RGBA) return passBound(n, 3) + passBound(n, 1);
  if (type == LZ_RGB16) return passBound(n, 2);
  return passBound(n, 1);
}

/**
 * Bytes of output space `lzEncode` needs for an image: the worst-case stream plus a work area (the
 * hash table, and the packed rows when `stride` is larger than a row). Negative if the arguments are invalid.
 */
export function lzEncodeBound(type: i32, width: i32, height: i32, stride: i32): isize {
  if (type < LZ_PLT1_LE || type > LZ_A8 || width <= 0 || height <= 0) return ERR_ARGS;
  const hs = headerStride(type, width);
  if (stride < hs || checkSizes(type, width, height, hs) != 0) return ERR_ARGS;
  const n = unitCount(type, width, height, hs);
  // stream, then a work area: 16 bytes of alignment slack, the hash table, the packed rows
  let bound = HEADER_BYTES + passesBound(type, n) + 16 + HTAB_BYTES;
  if (stride != hs) bound += <usize>hs * <usize>height;
  return <isize>bound;
}

/**
 * Encodes an image as an LZ stream. `stride` is the distance between rows in memory; the stream
 * carries the packed row size. Rows are coded in memory order; `topDown` only sets the header flag.
 * Returns the number of bytes written at `outPtr`, or a negative ERR_* code (errors.ts).
 */
export function lzEncode(type: i32, width: i32, height: i32, stride: i32, topDown: i32,
                         inPtr: usize, outPtr: usize, outCapacity: usize): isize {
  const bound = lzEncodeBound(type, width, height, stride);
  if (bound < 0) return bound;
  if (outCapacity < <usize>bound) return ERR_OUTPUT;
  const hs = headerStride(type, width);
  const n = unitCount(type, width, height, hs);
  // the work area starts past anything the coder can write
  const work = (outPtr + HEADER_BYTES + passesBound(type, n) + 15) & ~(<usize>15);
  htab = work;
  let base = inPtr;
  if (stride != hs) {
    base = work + HTAB_BYTES;
    packRows(base, inPtr, hs, stride, height);
  }
  putBE32(outPtr, LZ_MAGIC);
  putBE32(outPtr + 4, LZ_VERSION);
  putBE32(outPtr + 8, type);
  putBE32(outPtr + 12, width);
  putBE32(outPtr + 16, height);
  putBE32(outPtr + 20, hs);
  putBE32(outPtr + 24, topDown != 0 ? 1 : 0);
  const op = compressType(type, base, n, outPtr + HEADER_BYTES);
  return <isize>(op - outPtr);
}
