// Shared definitions for the LZ and GLZ codecs (SPICE's lz_common.h format): image types, header
// constants and the per-pixel-type "kinds" (error codes: errors.ts).
//
// A kind is a final class whose methods are all inlined. Codec loops are generic over the kind and
// call its methods through a null instance (`changetype<K>(0)`), so every loop is compiled once per
// pixel type and never tests the type at run time.

import { ERR_TYPE, ERR_SIZE } from "./errors";

export const LZ_MAGIC: u32 = 0x20205a4c;
export const LZ_VERSION: u32 = 0x00010001;

// LzImageType
export const LZ_PLT1_LE: i32 = 1;
export const LZ_PLT1_BE: i32 = 2;
export const LZ_PLT4_LE: i32 = 3;
export const LZ_PLT4_BE: i32 = 4;
export const LZ_PLT8: i32 = 5;
export const LZ_RGB16: i32 = 6;
export const LZ_RGB24: i32 = 7;
export const LZ_RGB32: i32 = 8;
export const LZ_RGBA: i32 = 9;
export const LZ_XXXA: i32 = 10;
export const LZ_A8: i32 = 11;

/** Literal runs hold at most this many units; a control byte below it starts a literal run. */
export const MAX_COPY: u32 = 32;

/** Largest image (stride × height bytes) the format accepts, as in lz.c. */
export const MAX_IMAGE_BYTES: u64 = 1024 * 1024 * 1024 - 1;

/** Bytes per unit in the encoder input for a type (units are pixels, or bytes for palettes). */
export function unitBytes(type: i32): i32 {
  if (type == LZ_RGB16) return 2;
  if (type == LZ_RGB24) return 3;
  if (type == LZ_RGB32 || type == LZ_RGBA || type == LZ_XXXA) return 4;
  return 1;
}

/** Pixels per byte of palette types (0 for the others). */
export function pltPixelsPerByte(type: i32): i32 {
  if (type == LZ_PLT1_LE || type == LZ_PLT1_BE) return 8;
  if (type == LZ_PLT4_LE || type == LZ_PLT4_BE) return 2;
  if (type == LZ_PLT8) return 1;
  return 0;
}

/** Row bytes the header must carry for a type and width (the minimum for palettes). */
export function headerStride(type: i32, width: i32): i32 {
  const ppb = pltPixelsPerByte(type);
  if (ppb != 0) return (width + ppb - 1) / ppb;
  return width * unitBytes(type);
}

/** Checks a header's (type, width, height, stride) like lz.c's lz_set_sizes; returns 0 or an error. */
export function checkSizes(type: i32, width: i32, height: i32, stride: i32): i32 {
  if (type < LZ_PLT1_LE || type > LZ_A8) return ERR_TYPE;
  if (width <= 0 || height <= 0 || stride <= 0) return ERR_SIZE;
  const ppb = pltPixelsPerByte(type);
  if (ppb != 0) {
    const minBytes = width / ppb;
    if (stride > minBytes && (width % ppb == 0 || stride - minBytes > 1)) return ERR_SIZE;
    if (stride < minBytes) return ERR_SIZE;
  } else if (<i64>stride != <i64>width * unitBytes(type)) {
    return ERR_SIZE;
  }
  if (<u64>stride * <u64>height > MAX_IMAGE_BYTES) return ERR_SIZE;
  return 0;
}

/** Number of coded units of an image: pixels for RGB types, packed bytes for palettes. */
export function unitCount(type: i32, width: i32, height: i32, stride: i32): usize {
  if (pltPixelsPerByte(type) != 0) return <usize>stride * <usize>height;
  return <usize>width * <usize>height;
}

// ---- big-endian helpers ----

@inline export function putBE32(p: usize, v: u32): void {
  store<u32>(p, bswap<u32>(v));
}

@inline export function getBE32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}

/** Reads a big-endian u32 byte by byte (no alignment or over-read assumptions). */
@inline export function readBE32(p: usize): u32 {
  return (<u32>load<u8>(p) << 24) | (<u32>load<u8>(p, 1) << 16) | (<u32>load<u8>(p, 2) << 8) | <u32>load<u8>(p, 3);
}

// ---- hashing ----

@inline function djb(h: u32, c: u32): u32 {
  return ((h << 5) + h) ^ c;
}

@inline function djb4(h: v128, c: v128): v128 {
  return v128.xor(i32x4.add(i32x4.shl(h, 5), h), c);
}

// ---- pixel kinds ----
//
// Members used by the encoders:
//   bpp      input bytes per unit
//   cat      0: RGB24/32 (a match may be 1 unit), 1: RGB16 (2 units), 2: one-byte units (3 units)
//   same     equality as the format defines it (RGB ignores the pad byte, RGB16 ignores bit 15)
//   hash     DJB2 over the three units at p (unmasked)
//   simd     true if hash4 and the vector match helpers below apply (RGB32 only)
//   hash4    hash() of four consecutive positions, one per lane
//   emit     writes the unit's literal bytes at op and returns the next op; it may write up to
//            three bytes past the literal (the output bound leaves room for that)
// Members used by the decoders:
//   obpp     output bytes per unit, lit/litBytes: one literal from the stream to the output

@final export class KRgb32 {
  @inline get bpp(): usize { return 4; }
  @inline get obpp(): usize { return 4; }
  @inline get litBytes(): usize { return 3; }
  @inline get cat(): i32 { return 0; }
  @inline same(a: usize, b: usize): bool {
    return ((load<u32>(a) ^ load<u32>(b)) & 0xffffff) == 0;
  }
  @inline hash(p: usize): u32 {
    // R, G, B of three pixels, from one 4-byte load per pixel
    const a = load<u32>(p), b = load<u32>(p, 4), c = load<u32>(p, 8);
    let h: u32 = 5381;
    h = djb(h, (a >> 16) & 255); h = djb(h, (a >> 8) & 255); h = djb(h, a & 255);
    h = djb(h, (b >> 16) & 255); h = djb(h, (b >> 8) & 255); h = djb(h, b & 255);
    h = djb(h, (c >> 16) & 255); h = djb(h, (c >> 8) & 255); h = djb(h, c & 255);
    return h;
  }
  @inline get simd(): bool { return true; }
  /** hash() of the four positions p, p+4, p+8, p+12 in the lanes (reads 24 bytes from p). */
  @inline hash4(p: usize): v128 {
    const a = v128.load(p), b = v128.load(p, 4), c = v128.load(p, 8);
    const m = i32x4.splat(255);
    let h = i32x4.splat(5381 * 33);
    h = v128.xor(h, v128.and(i32x4.shr_u(a, 16), m)); h = djb4(h, v128.and(i32x4.shr_u(a, 8), m)); h = djb4(h, v128.and(a, m));
    h = djb4(h, v128.and(i32x4.shr_u(b, 16), m)); h = djb4(h, v128.and(i32x4.shr_u(b, 8), m)); h = djb4(h, v128.and(b, m));
    h = djb4(h, v128.and(i32x4.shr_u(c, 16), m)); h = djb4(h, v128.and(i32x4.shr_u(c, 8), m)); h = djb4(h, v128.and(c, m));
    return h;
  }
  @inline emit(op: usize, p: usize): usize {
    store<u32>(op, load<u32>(p));
    return op + 3;
  }
  @inline lit(op: usize, ip: usize): void {
    store<u32>(op, <u32>load<u8>(ip) | (<u32>load<u8>(ip, 1) << 8) | (<u32>load<u8>(ip, 2) << 16));
  }
  @inline copyUnit(dst: usize, src: usize): void {
    store<u32>(dst, load<u32>(src));
  }
}

/** The alpha pass of RGBA (and XXXA): byte 3 of four-byte pixels, coded like one-byte units. */
@final export class KAlpha {
  @inline get simd(): bool { return false; }
  @inline hash4(p: usize): v128 { return i32x4.splat(0); }
  @inline get bpp(): usize { return 4; }
  @inline get obpp(): usize { return 4; }
  @inline get litBytes(): usize { return 1; }
  @inline get cat(): i32 { return 2; }
  @inline same(a: usize, b: usize): bool {
    return load<u8>(a, 3) == load<u8>(b, 3);
  }
  @inline hash(p: usize): u32 {
    let h: u32 = 5381;
    h = djb(h, load<u8>(p, 3)); h = djb(h, load<u8>(p, 7)); h = djb(h, load<u8>(p, 11));
    return h;
  }
  @inline emit(op: usize, p: usize): usize {
    store<u8>(op, load<u8>(p, 3));
    return op + 1;
  }
  @inline lit(op: usize, ip: usize): void {
    store<u8>(op, load<u8>(ip), 3);
  }
  @inline copyUnit(dst: usize, src: usize): void {
    store<u8>(dst, load<u8>(src, 3), 3);
  }
}

@final export class KRgb24 {
  @inline get simd(): bool { return false; }
  @inline hash4(p: usize): v128 { return i32x4.splat(0); }
  @inline get bpp(): usize { return 3; }
  @inline get obpp(): usize { return 3; }
  @inline get litBytes(): usize { return 3; }
  @inline get cat(): i32 { return 0; }
  @inline same(a: usize, b: usize): bool {
    return load<u16>(a) == load<u16>(b) && load<u8>(a, 2) == load<u8>(b, 2);
  }
  @inline hash(p: usize): u32 {
    let h: u32 = 5381;
    h = djb(h, load<u8>(p, 2)); h = djb(h, load<u8>(p, 1)); h = djb(h, load<u8>(p, 0));
    h = djb(h, load<u8>(p, 5)); h = djb(h, load<u8>(p, 4)); h = djb(h, load<u8>(p, 3));
    h = djb(h, load<u8>(p, 8)); h = djb(h, load<u8>(p, 7)); h = djb(h, load<u8>(p, 6));
    return h;
  }
  @inline emit(op: usize, p: usize): usize {
    store<u16>(op, load<u16>(p));
    store<u8>(op, load<u8>(p, 2), 2);
    return op + 3;
  }
  @inline lit(op: usize, ip: usize): void {
    store<u16>(op, load<u16>(ip));
    store<u8>(op, load<u8>(ip, 2), 2);
  }
  @inline copyUnit(dst: usize, src: usize): void {
    store<u16>(dst, load<u16>(src));
    store<u8>(dst, load<u8>(src, 2), 2);
  }
}

/** RGB16 (x1r5g5b5, little endian in memory); the stream carries the high byte first. */
@final export class KRgb16 {
  @inline get simd(): bool { return false; }
  @inline hash4(p: usize): v128 { return i32x4.splat(0); }
  @inline get bpp(): usize { return 2; }
  @inline get obpp(): usize { return 2; }
  @inline get litBytes(): usize { return 2; }
  @inline get cat(): i32 { return 1; }
  @inline same(a: usize, b: usize): bool {
    return ((load<u16>(a) ^ load<u16>(b)) & 0x7fff) == 0;
  }
  @inline hash(p: usize): u32 {
    let h: u32 = 5381;
    h = djb(h, load<u8>(p, 0)); h = djb(h, load<u8>(p, 1) & 0x7f);
    h = djb(h, load<u8>(p, 2)); h = djb(h, load<u8>(p, 3) & 0x7f);
    h = djb(h, load<u8>(p, 4)); h = djb(h, load<u8>(p, 5) & 0x7f);
    return h;
  }
  @inline emit(op: usize, p: usize): usize {
    store<u16>(op, bswap<u16>(load<u16>(p)));
    return op + 2;
  }
  @inline lit(op: usize, ip: usize): void {
    store<u16>(op, bswap<u16>(load<u16>(ip)));
  }
  @inline copyUnit(dst: usize, src: usize): void {
    store<u16>(dst, load<u16>(src));
  }
}

/** One-byte units: palette indices (PLT1/4/8, packed bytes) and A8. */
@final export class KByte {
  @inline get simd(): bool { return false; }
  @inline hash4(p: usize): v128 { return i32x4.splat(0); }
  @inline get bpp(): usize { return 1; }
  @inline get obpp(): usize { return 1; }
  @inline get litBytes(): usize { return 1; }
  @inline get cat(): i32 { return 2; }
  @inline same(a: usize, b: usize): bool {
    return load<u8>(a) == load<u8>(b);
  }
  @inline hash(p: usize): u32 {
    let h: u32 = 5381;
    h = djb(h, load<u8>(p, 0)); h = djb(h, load<u8>(p, 1)); h = djb(h, load<u8>(p, 2));
    return h;
  }
  @inline emit(op: usize, p: usize): usize {
    store<u8>(op, load<u8>(p));
    return op + 1;
  }
  @inline lit(op: usize, ip: usize): void {
    store<u8>(op, load<u8>(ip));
  }
  @inline copyUnit(dst: usize, src: usize): void {
    store<u8>(dst, load<u8>(src));
  }
}

/**
 * Upper bound of the bytes one pass of `units` units can take: every unit costs at most its literal
 * bytes plus one control byte (matches are never longer than the literals they replace), plus
 * slack for the look-ahead stores of `emit`.
 */
export function passBound(units: usize, litBytes: usize): usize {
  return units * (litBytes + 1) + 16;
}

/** Copies `rows` rows of `rowBytes` bytes from a strided source into a packed destination. */
export function packRows(dst: usize, src: usize, rowBytes: usize, stride: usize, rows: usize): void {
  if (stride == rowBytes) {
    memory.copy(dst, src, rowBytes * rows);
    return;
  }
  for (let y: usize = 0; y < rows; y++) {
    memory.copy(dst + y * rowBytes, src + y * stride, rowBytes);
  }
}

// ---- RGB32 vector scans (pixels compared on R, G, B; reads stay below `bound`) ----

const RGB_MASK: u32 = 0xffffff;

/** First pixel address in [p, bound) whose colour differs from x, or bound. */
@inline export function rgb32RunEnd(p: usize, bound: usize, x: u32): usize {
  const m = i32x4.splat(RGB_MASK);
  const xv = i32x4.splat(x & RGB_MASK);
  while (p + 16 <= bound) {
    const ne = i32x4.ne(v128.and(v128.load(p), m), xv);
    if (v128.any_true(ne)) return p + (<usize>ctz(i32x4.bitmask(ne)) << 2);
    p += 16;
  }
  while (p < bound) {
    if (((load<u32>(p) ^ x) & RGB_MASK) != 0) return p;
    p += 4;
  }
  return bound;
}

/** First pixel address q in [p, bound) whose colour differs from the pixel at q − (p − ref), or bound. */
@inline export function rgb32MatchEnd(ref: usize, p: usize, bound: usize): usize {
  const m = i32x4.splat(RGB_MASK);
  const delta = p - ref;
  while (p + 16 <= bound) {
    const ne = v128.and(v128.xor(v128.load(p), v128.load(p - delta)), m);
    if (v128.any_true(ne)) return p + (<usize>ctz(i32x4.bitmask(i32x4.ne(ne, i32x4.splat(0)))) << 2);
    p += 16;
  }
  while (p < bound) {
    if (((load<u32>(p) ^ load<u32>(p - delta)) & RGB_MASK) != 0) return p;
    p += 4;
  }
  return bound;
}

// ---- decoder helpers shared by LZ and GLZ (specialised per kind K) ----

/**
 * Writes `cnt` literal units from the stream at ip to op, in K's output layout; the caller has
 * checked that the stream holds cnt × K.litBytes bytes. Returns the stream position after them.
 */
@inline export function copyLiterals<K>(op: usize, ip: usize, cnt: usize, inEnd: usize): usize {
  const K = changetype<K>(0);
  const lb = K.litBytes;
  const ob = K.obpp;
  if (ob == 4 && lb == 3 && inEnd - ip > cnt * 3) {
    // RGB32: one 4-byte load per pixel, its fourth byte (the next literal's) masked off: needs a byte past the run
    for (let i: usize = 0; i < cnt; i++) {
      store<u32>(op, load<u32>(ip) & 0xffffff);
      ip += 3;
      op += 4;
    }
    return ip;
  }
  for (let i: usize = 0; i < cnt; i++) {
    K.lit(op, ip);
    ip += lb;
    op += ob;
  }
  return ip;
}

/** Copies a match of `len` units from `ofs` units back; both are already range-checked. */
@inline export function copyMatch<K>(op: usize, len: usize, ofs: usize): void {
  const K = changetype<K>(0);
  const ob = K.obpp;
  const ref = op - ofs * ob;
  if (K.cat == 2 && K.bpp == 4) {
    // alpha pass: only byte 3 of each pixel
    for (let i: usize = 0; i < len; i++) K.copyUnit(op + i * 4, ref + i * 4);
    return;
  }
  if (ofs >= len) {
    memory.copy(op, ref, len * ob);
    return;
  }
  if (ob == 4) {
    if (ofs == 1) {
      // a run (distance 1): the pixel splatted and stored 16 bytes at a time, runs being the long matches
      const v = load<u32>(ref);
      const e = op + len * 4;
      let p = op;
      if (len >= 4) {
        const w = i32x4.splat(<i32>v);
        for (; p + 16 <= e; p += 16) v128.store(p, w);
      }
      for (; p < e; p += 4) store<u32>(p, v);
      return;
    }
    for (let i: usize = 0; i < len; i++) store<u32>(op + i * 4, load<u32>(ref + i * 4));
    return;
  }
  if (ob == 1 && ofs == 1) {
    memory.fill(op, load<u8>(ref), len);
    return;
  }
  for (let i: usize = 0; i < len; i++) K.copyUnit(op + i * ob, ref + i * ob);
}

// ---- encoder helper shared by LZ and GLZ ----

/**
 * Ends a pass: writes the units from ip to end as literals, then closes the open literal run (or drops
 * its unused control byte when it is empty). `copy` and `lastCopy` are the run's length and control
 * byte. Returns the output end.
 */
@inline export function finishLiterals<K>(op: usize, ip: usize, end: usize, copy: u32, lastCopy: usize): usize {
  const K = changetype<K>(0);
  const bpp = K.bpp;
  while (ip < end) {
    op = K.emit(op, ip);
    ip += bpp;
    if (++copy == MAX_COPY) {
      copy = 0;
      lastCopy = op;
      store<u8>(op++, <u8>(MAX_COPY - 1));
    }
  }
  if (copy != 0) store<u8>(lastCopy, <u8>(copy - 1));
  else op--;
  return op;
}
