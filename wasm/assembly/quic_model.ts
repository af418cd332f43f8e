// QUIC (SPICE's SFALIC-derived lossless image codec): tables and adaptive model shared by the encoder
// (quic.ts) and the decoder (quic_decode.ts). The model is spice-common's (quic.c, quic_tmpl.c,
// quic_family_tmpl.c); this file only holds data and the small routines both sides need.
//
// Pixels are handled as "packed" u32 words: byte 0 = B (or gray), byte 1 = G, byte 2 = R, byte 3 = A.
// Every channel value, residual symbol and context lives in its own byte of such a word, so a pixel's
// prediction and residual mapping are done for all channels at once with byte-wise (SWAR/SIMD) arithmetic.

// ---------------------------------------------------------------------------------------------------
// Limits, image types (error codes: errors.ts)

/** Widest row the codec handles (row buffers are static). */
export const QUIC_MAX_WIDTH: i32 = 65535;
/** Largest pixel count a stream may announce (spice-common's limit). */
export const QUIC_MAX_PIXELS: u64 = 512 * 1024 * 1024 - 1;

export const QUIC_MAGIC: u32 = 0x43495551; // "QUIC" little endian
export const QUIC_VERSION: u32 = 0;

export const QUIC_TYPE_GRAY: i32 = 1;
export const QUIC_TYPE_RGB16: i32 = 2;
export const QUIC_TYPE_RGB24: i32 = 3;
export const QUIC_TYPE_RGB32: i32 = 4;
export const QUIC_TYPE_RGBA: i32 = 5;

/** Bits a codeword may take at most (the family tables are built for this limit). */
const MAX_CODEWORD = 26;
/** Coded pixel positions between two steps of the wait-mask schedule. */
export const WM_NEXT: u32 = 2048;
/** Last wait-mask index (wait mask 63). */
export const WM_MAX: u32 = 6;

// ---------------------------------------------------------------------------------------------------
// Static tables

/** Pseudo-random words that schedule the model updates (quic.c's table, needed for identical output). */
export const RAND_TAB: usize = memory.data<u32>([
  0x02c57542, 0x35427717, 0x2f5a2153, 0x9244f155, 0x7bd26d07, 0x354c6052, 0x57329b28, 0x2993868e,
  0x6cd8808c, 0x147b46e0, 0x99db66af, 0xe32b4cac, 0x1b671264, 0x9d433486, 0x62a4c192, 0x06089a4b,
  0x9e3dce44, 0xdaabee13, 0x222425ea, 0xa46f331d, 0xcd589250, 0x8bb81d7f, 0xc8b736b9, 0x35948d33,
  0xd7ac7fd0, 0x5fbe2803, 0x2cfbc105, 0x013dbc4e, 0x7a37820f, 0x39f88e9e, 0xedd58794, 0xc5076689,
  0xfcada5a4, 0x64c2f46d, 0xb3ba3243, 0x8974b4f9, 0x5a05aebd, 0x20afcd00, 0x39e2b008, 0x88a18a45,
  0x600bde29, 0xf3971ace, 0xf37b0a6b, 0x7041495b, 0x70b707ab, 0x06beffbb, 0x4206051f, 0xe13c4ee3,
  0xc1a78327, 0x91aa067c, 0x8295f72a, 0x732917a6, 0x1d871b4d, 0x4048f136, 0xf1840e7e, 0x6a6048c1,
  0x696cb71a, 0x7ff501c3, 0x0fc6310b, 0x57e0f83d, 0x8cc26e74, 0x11a525a2, 0x946934c7, 0x7cd888f0,
  0x8f9d8604, 0x4f86e73b, 0x04520316, 0xdeeea20c, 0xf1def496, 0x67687288, 0xf540c5b2, 0x22401484,
  0x3478658a, 0xc2385746, 0x01979c2c, 0x5dad73c8, 0x0321f58b, 0xf0fedbee, 0x92826ddf, 0x284bec73,
  0x5b1a1975, 0x03df1e11, 0x20963e01, 0xa17cf12b, 0x740d776e, 0xa7a6bf3c, 0x01b5cce4, 0x1118aa76,
  0xfc6fac0a, 0xce927e9b, 0x00bf2567, 0x806f216c, 0xbca69056, 0x795bd3e9, 0xc9dc4557, 0x8929b6c2,
  0x789d52ec, 0x3f3fbf40, 0xb9197368, 0xa38c15b5, 0xc3b44fa8, 0xca8333b0, 0xb7e8d590, 0xbe807feb,
  0xbf5f8360, 0xd99e2f5c, 0x372928e1, 0x7c757c4c, 0x0db5b154, 0xc01ede02, 0x1fc86e78, 0x1f3985be,
  0xb4805c77, 0x00c880fa, 0x974c1b12, 0x35ab0214, 0xb2dc840d, 0x5b00ae37, 0xd313b026, 0xb260969d,
  0x7f4c8879, 0x1734c4d3, 0x49068631, 0xb9f6a021, 0x6b863e6f, 0xcee5debf, 0x29f8c9fb, 0x53dd6880,
  0x72b61223, 0x1f67a9fd, 0x0a0f6993, 0x13e59119, 0x11cca12e, 0xfe6b6766, 0x16b6effc, 0x97918fc4,
  0xc2b8a563, 0x94f2f741, 0x0bfa8c9a, 0xd1537ae8, 0xc1da349c, 0x873c60ca, 0x95005b85, 0x9b5c080e,
  0xbc8abbd9, 0xe1eab1d2, 0x6dac9070, 0x4ea9ebf1, 0xe0cf30d4, 0x1ef5bd7b, 0xd161043e, 0x5d2fa2e2,
  0xff5d3cae, 0x86ed9f87, 0x2aa1daa1, 0xbd731a34, 0x9e8f4b22, 0xb1c2c67a, 0xc21758c9, 0xa182215d,
  0xccb01948, 0x8d168df7, 0x04238cfe, 0x368c3dbc, 0x0aeadca5, 0xbad21c24, 0x0a71fee5, 0x9fc5d872,
  0x54c152c6, 0xfc329483, 0x6783384a, 0xeddb3e1c, 0x65f90e30, 0x884ad098, 0xce81675a, 0x4b372f7d,
  0x68bf9a39, 0x43445f1e, 0x40f8d8cb, 0x90d5acb6, 0x4cd07282, 0x349eeb06, 0x0c9d5332, 0x520b24ef,
  0x80020447, 0x67976491, 0x2f931ca3, 0xfe9b0535, 0xfcd30220, 0x61a9e6cc, 0xa487d8d7, 0x3f7c5dd1,
  0x7d0127c5, 0x48f51d15, 0x60dea871, 0xc9a91cb7, 0x58b53bb3, 0x9d5e0b2d, 0x624a78b4, 0x30dbee1b,
  0x9bdf22e7, 0x1df5c299, 0x2d5643a7, 0xf4dd35ff, 0x03ca8fd6, 0x53b47ed8, 0x6f2c19aa, 0xfeb0c1f4,
  0x49e54438, 0x2f2577e6, 0xbf876969, 0x72440ea9, 0xfa0bafb8, 0x74f5b3a0, 0x7dd357cd, 0x89ce1358,
  0x6ef2cdda, 0x1e7767f3, 0xa6be9fdb, 0x4f5f88f8, 0xba994a3a, 0x08ca6b65, 0xe0893818, 0x9e00a16a,
  0xf42bfc8f, 0x9972eedc, 0x749c8b51, 0x32c05f5e, 0xd706805f, 0x6bfbb7cf, 0xd9210a10, 0x31a1db97,
  0x923a9559, 0x37a7a1f6, 0x059f8861, 0xca493e62, 0x65157e81, 0x8f6467dd, 0xab85ff9f, 0x9331aff2,
  0x8616b9f5, 0xedbd5695, 0xee7e29b1, 0x313ac44f, 0xb903112f, 0x432ef649, 0xdc0a36c0, 0x61cf2bba,
  0x81474925, 0xa8b6c7ad, 0xee5931de, 0xb2f8158d, 0x59fb7409, 0x2e3dfaed, 0x9af25a3f, 0xe1fed4d5,
]);

/** Run-length (MELCODE) state → number of remainder bits. */
export const MELC_BITS: usize = memory.data<u8>([
  0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15,
]);
export const MELC_LAST: i32 = 31;

/** Counter-halving threshold per wait-mask index (model evolution 3). */
const TRIGGERS: usize = memory.data<u32>([110, 550, 900, 800, 550, 400, 350]);

// Per code family (bits per channel 8 or 5): for each code parameter l and symbol s,
//   CODE[l][s] = codeword, CLEN[l][s] = its length (u8 each, 256 symbols per l; codewords fit in 8 bits)
//   LEN[s][l] = codeword length           (u8, 8 per symbol, for the model update)
//   DEC[l]    = { notGR prefix mask, nGR, escape length, escape suffix mask } (4 × u32)
//   BUCKET[s] = bucket of context s       (u8)
export const CODE8: usize = memory.data(8 * 256);
export const CLEN8: usize = memory.data(8 * 256);
export const LEN8: usize = memory.data(256 * 8);
export const DEC8: usize = memory.data(8 * 16);
export const BUCKET8: usize = memory.data(256);
export const CODE5: usize = memory.data(8 * 256);
export const CLEN5: usize = memory.data(8 * 256);
export const LEN5: usize = memory.data(256 * 8);
export const DEC5: usize = memory.data(8 * 16);
export const BUCKET5: usize = memory.data(256);

function ceilLog2(v: u32): u32 {
  if (v <= 1) return 0;
  return 32 - clz<u32>(v - 1);
}

function buildFamily(bpc: u32, codes: usize, clens: usize, len: usize, dec: usize, bucket: usize): void {
  for (let l: u32 = 0; l < bpc; l++) {
    let prefix: u32 = MAX_CODEWORD - bpc;
    const cap: u32 = (1 << (bpc - l)) - 1;
    if (prefix > cap) prefix = cap;
    const nGR = prefix << l;
    const suffix = ceilLog2((1 << bpc) - nGR);
    const escLen = prefix + suffix;
    for (let s: u32 = 0; s < 256; s++) {
      let code: u32, n: u32;
      if (s < nGR) {
        code = (1 << l) | (s & ((1 << l) - 1));
        n = (s >> l) + l + 1;
      } else {
        code = (s - nGR) & ((1 << suffix) - 1);
        n = escLen;
      }
      store<u8>(codes + (l << 8) + s, u8(code));
      store<u8>(clens + (l << 8) + s, u8(n));
      store<u8>(len + s * 8 + l, u8(n));
    }
    const d = dec + l * 16;
    store<u32>(d, u32((u64(1) << (32 - prefix)) - 1));
    store<u32>(d, nGR, 4);
    store<u32>(d, escLen, 8);
    store<u32>(d, (1 << suffix) - 1, 12);
  }
  // Buckets double in size: [0] [1,2] [3..6] [7..14] ..., the last one taking everything above.
  for (let s: u32 = 0; s < 256; s++) {
    let b: u32 = 31 - clz<u32>(s + 1);
    if (b > bpc - 1) b = bpc - 1;
    store<u8>(bucket + s, u8(b));
  }
}

buildFamily(8, CODE8, CLEN8, LEN8, DEC8, BUCKET8);
buildFamily(5, CODE5, CLEN5, LEN5, DEC5, BUCKET5);

// ---------------------------------------------------------------------------------------------------
// Code families as compile-time type parameters (never switched on at run time)

@final export class Bpc8 {
  @inline get bpc(): u32 { return 8; }
  @inline get code(): usize { return CODE8; }
  @inline get clen(): usize { return CLEN8; }
  @inline get len(): usize { return LEN8; }
  @inline get dec(): usize { return DEC8; }
  @inline get bucket(): usize { return BUCKET8; }
}

@final export class Bpc5 {
  @inline get bpc(): u32 { return 5; }
  @inline get code(): usize { return CODE5; }
  @inline get clen(): usize { return CLEN5; }
  @inline get len(): usize { return LEN5; }
  @inline get dec(): usize { return DEC5; }
  @inline get bucket(): usize { return BUCKET5; }
}

// ---------------------------------------------------------------------------------------------------
// Adaptive model: per channel 8 buckets × 8 counters and each bucket's best code parameter

/** Counters: [channel 0..3][bucket 0..7][code 0..7] u32. */
export const COUNTERS: usize = memory.data(4 * 8 * 8 * 4);
/** Best code parameter l of each [channel][bucket], stored as l << 8 (u16): the row index of CODE/CLEN. */
export const BESTCODE: usize = memory.data(4 * 8 * 2);

/** Shared update-schedule and run-length state. One for R,G,B (or gray), one for alpha. */
export const STATE_MAIN: usize = memory.data(32);
export const STATE_ALPHA: usize = memory.data(32);
// field offsets (u32 each)
export const S_WAITCNT: usize = 0;
export const S_SEED: usize = 4;
export const S_TRIGGER: usize = 8;
export const S_WMIDX: usize = 12;
export const S_WMILEFT: usize = 16;
export const S_MELCSTATE: usize = 20;

function resetState(st: usize): void {
  store<u32>(st + S_WAITCNT, 0);
  store<u32>(st + S_SEED, 0xff);
  store<u32>(st + S_WMIDX, 0);
  store<u32>(st + S_TRIGGER, load<u32>(TRIGGERS));
  store<u32>(st + S_WMILEFT, WM_NEXT);
  store<u32>(st + S_MELCSTATE, 0);
}

/** Starts a new image: clears every channel's model and both schedule states. */
export function resetModel(bpc: u32): void {
  memory.fill(COUNTERS, 0, 4 * 8 * 8 * 4);
  for (let i: usize = 0; i < 32; i++) store<u16>(BESTCODE + (i << 1), u16((bpc - 1) << 8));
  resetState(STATE_MAIN);
  resetState(STATE_ALPHA);
}

/** Advances the wait-mask schedule by one step (called when WM_NEXT positions have been coded). */
@inline export function nextWaitMask(st: usize): void {
  const idx = load<u32>(st + S_WMIDX) + 1;
  store<u32>(st + S_WMIDX, idx);
  store<u32>(st + S_TRIGGER, load<u32>(TRIGGERS + (idx << 2)));
  store<u32>(st + S_WMILEFT, WM_NEXT);
}

/** Next pseudo-random word of a schedule state's sequence. */
@inline export function nextRand(seedPtr: usize): u32 {
  const seed = load<u32>(seedPtr) + 1;
  store<u32>(seedPtr, seed);
  return load<u32>(RAND_TAB + ((seed & 0xff) << 2));
}

/**
 * Adds the cost of coding `sym` under every code parameter to the counters of the bucket chosen by
 * context `ctx` in channel `ch`, picks the cheapest parameter (ties go to the larger one) and halves
 * the counters once the best one passes `trigger`.
 */
@inline export function updateModel<F>(ch: u32, ctx: u32, sym: u32, trigger: u32): void {
  updateBucket<F>(ch * 8 + u32(load<u8>(changetype<F>(0).bucket + ctx)), sym, trigger);
}

/** Adds code `l`'s length for the symbol to its counter; returns the new count. */
@inline function bump(cnt: usize, lens: usize, l: usize): u32 {
  const v = load<u32>(cnt + (l << 2)) + u32(load<u8>(lens + l));
  store<u32>(cnt + (l << 2), v);
  return v;
}

/**
 * updateModel for a bucket given by its index `cell` = channel × 8 + bucket. Unrolled (the family's
 * size is a compile-time constant): the scan from the largest code down keeps the first minimum.
 */
@inline export function updateBucket<F>(cell: u32, sym: u32, trigger: u32): void {
  const f = changetype<F>(0);
  const cnt = COUNTERS + (cell << 5);
  const lens = f.len + (sym << 3);
  if (f.bpc == 8) {
    // All eight counters at once; the best code is the highest one holding the minimum.
    const add = i16x8.extend_low_i8x16_u(v128.load64_zero(lens));
    let lo = i32x4.add(v128.load(cnt), i32x4.extend_low_i16x8_u(add));
    let hi = i32x4.add(v128.load(cnt, 16), i32x4.extend_high_i16x8_u(add));
    let m = i32x4.min_u(lo, hi);
    m = i32x4.min_u(m, i32x4.shuffle(m, m, 2, 3, 0, 1));
    m = i32x4.min_u(m, i32x4.shuffle(m, m, 1, 0, 3, 2));
    const at = i32x4.bitmask(i32x4.eq(lo, m)) | (i32x4.bitmask(i32x4.eq(hi, m)) << 4);
    store<u16>(BESTCODE + (cell << 1), u16((31 - clz<u32>(at)) << 8));
    if (u32(i32x4.extract_lane(m, 0)) > trigger) {
      lo = i32x4.shr_u(lo, 1);
      hi = i32x4.shr_u(hi, 1);
    }
    v128.store(cnt, lo);
    v128.store(cnt, hi, 16);
    return;
  }
  let best: u32, bestLen: u32, v: u32;
  if (f.bpc == 8) {
    best = 7; bestLen = bump(cnt, lens, 7);
    v = bump(cnt, lens, 6); best = select<u32>(6, best, v < bestLen); bestLen = min(v, bestLen);
    v = bump(cnt, lens, 5); best = select<u32>(5, best, v < bestLen); bestLen = min(v, bestLen);
    v = bump(cnt, lens, 4); best = select<u32>(4, best, v < bestLen); bestLen = min(v, bestLen);
  } else {
    best = 4; bestLen = bump(cnt, lens, 4);
  }
  v = bump(cnt, lens, 3); best = select<u32>(3, best, v < bestLen); bestLen = min(v, bestLen);
  v = bump(cnt, lens, 2); best = select<u32>(2, best, v < bestLen); bestLen = min(v, bestLen);
  v = bump(cnt, lens, 1); best = select<u32>(1, best, v < bestLen); bestLen = min(v, bestLen);
  v = bump(cnt, lens, 0); best = select<u32>(0, best, v < bestLen); bestLen = min(v, bestLen);
  store<u16>(BESTCODE + (cell << 1), u16(best << 8));
  if (bestLen > trigger) {
    for (let i: u32 = 0; i < f.bpc; i++) {
      const o = usize(i) << 2;
      store<u32>(cnt + o, load<u32>(cnt + o) >> 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Byte-wise arithmetic on packed pixels

/** floor((a+b)/2) in every byte. */
@inline export function avgFloor4(a: u32, b: u32): u32 {
  return (a & b) + (((a ^ b) >> 1) & 0x7f7f7f7f);
}

/** (x - y) mod 256 in every byte. */
@inline export function sub4(x: u32, y: u32): u32 {
  return ((x | 0x80808080) - (y & 0x7f7f7f7f)) ^ ((x ^ ~y) & 0x80808080);
}

/** (x + y) mod 256 in every byte. */
@inline export function add4(x: u32, y: u32): u32 {
  return ((x & 0x7f7f7f7f) + (y & 0x7f7f7f7f)) ^ ((x ^ y) & 0x80808080);
}

// ---------------------------------------------------------------------------------------------------
// Row buffers: one block taken from the heap for the duration of an encode/decode call (the bump
// allocator gives the last block back on free), so they cost no static memory. The rows sit at fixed
// distances from the block's base (SCR), sized for the widest row: the hot loops then address every row
// from one base register plus a constant offset.

/** Distance between two rows of the block: 65536 + 64 words. */
export const ROW_SPAN: usize = 0x40100;
/** Rows of packed words (encoder: symbols, buckets; decoder: previous/current values). */
export const OFF_ROW_A: usize = 0;
export const OFF_ROW_B: usize = ROW_SPAN;
/** Context rows (word per pixel, the last coded one at each position), main channels and alpha. */
export const OFF_CTX_MAIN: usize = 2 * ROW_SPAN;
export const OFF_CTX_ALPHA: usize = 3 * ROW_SPAN;
/** Encoder: "run mode may start here" (word per pixel), main and alpha. */
export const OFF_CAND_MAIN: usize = 4 * ROW_SPAN;
export const OFF_CAND_ALPHA: usize = 5 * ROW_SPAN;
/** Encoder: four byte rows of "equals left neighbour" (main/alpha × this/previous row), ROW_SPAN/4 apart. */
export const OFF_FLAGS: usize = 6 * ROW_SPAN;
export const FLAG_ROW: usize = ROW_SPAN >> 2;

/** Base of the row block during a call (16 bytes below it are usable too, for position −1). */
export let SCR: usize = 0;
export let ROW_A: usize = 0;
export let ROW_B: usize = 0;
export let CTX_MAIN: usize = 0;
export let CTX_ALPHA: usize = 0;
export let FLAGS: usize = 0;
let scratch: usize = 0;

export function scratchBegin(): void {
  scratch = heap.alloc(7 * ROW_SPAN + 64);
  SCR = ((scratch + 15) & ~usize(15)) + 16;
  ROW_A = SCR + OFF_ROW_A;
  ROW_B = SCR + OFF_ROW_B;
  CTX_MAIN = SCR + OFF_CTX_MAIN;
  CTX_ALPHA = SCR + OFF_CTX_ALPHA;
  FLAGS = SCR + OFF_FLAGS;
}

export function scratchEnd(): void {
  heap.free(scratch);
  scratch = 0;
}

// ---------------------------------------------------------------------------------------------------
// Pixel layouts as compile-time type parameters: how a pixel is read from / written to an image row as
// a packed word, and which code family and passes it uses.

@final export class PxRgb32 {
  @inline get bpp(): usize { return 4; }
  @inline get type(): i32 { return QUIC_TYPE_RGB32; }
  /** Added to each byte's bucket × 2 so it is the byte offset of its channel's model in BESTCODE:
   *  B → channel 2, G → 1, R → 0, A → 3 (× 16). */
  @inline get bias(): u32 { return 0x30001020; }
  @inline get alpha(): bool { return false; }
  @inline load(p: usize): u32 { return load<u32>(p) & 0xffffff; }
  @inline store(p: usize, v: u32): void { store<u32>(p, v & 0xffffff); }
}

@final export class PxRgba {
  @inline get bpp(): usize { return 4; }
  @inline get type(): i32 { return QUIC_TYPE_RGBA; }
  /** Added to each byte's bucket × 2 so it is the byte offset of its channel's model in BESTCODE:
   *  B → channel 2, G → 1, R → 0, A → 3 (× 16). */
  @inline get bias(): u32 { return 0x30001020; }
  @inline get alpha(): bool { return true; }
  @inline load(p: usize): u32 { return load<u32>(p); }
  @inline store(p: usize, v: u32): void { store<u32>(p, v); }
}

@final export class PxRgb24 {
  @inline get bpp(): usize { return 3; }
  @inline get type(): i32 { return QUIC_TYPE_RGB24; }
  /** Added to each byte's bucket × 2 so it is the byte offset of its channel's model in BESTCODE:
   *  B → channel 2, G → 1, R → 0, A → 3 (× 16). */
  @inline get bias(): u32 { return 0x30001020; }
  @inline get alpha(): bool { return false; }
  @inline load(p: usize): u32 { return u32(load<u16>(p)) | (u32(load<u8>(p, 2)) << 16); }
  @inline store(p: usize, v: u32): void {
    store<u16>(p, u16(v));
    store<u8>(p, u8(v >> 16), 2);
  }
}

/** x1r5g5b5 little endian; the packed word holds the three 5-bit values in bytes 0 (B), 1 (G), 2 (R). */
@final export class PxRgb16 {
  @inline get bpp(): usize { return 2; }
  @inline get type(): i32 { return QUIC_TYPE_RGB16; }
  /** Added to each byte's bucket × 2 so it is the byte offset of its channel's model in BESTCODE:
   *  B → channel 2, G → 1, R → 0, A → 3 (× 16). */
  @inline get bias(): u32 { return 0x30001020; }
  @inline get alpha(): bool { return false; }
  @inline load(p: usize): u32 {
    const v = u32(load<u16>(p));
    return (v & 0x1f) | ((v & 0x3e0) << 3) | ((v & 0x7c00) << 6);
  }
  @inline store(p: usize, v: u32): void {
    store<u16>(p, u16((v & 0x1f) | ((v >> 3) & 0x3e0) | ((v >> 6) & 0x7c00)));
  }
}

@final export class PxGray {
  @inline get bpp(): usize { return 1; }
  @inline get type(): i32 { return QUIC_TYPE_GRAY; }
  @inline get bias(): u32 { return 0; }
  @inline get alpha(): bool { return false; }
  @inline load(p: usize): u32 { return u32(load<u8>(p)); }
  @inline store(p: usize, v: u32): void { store<u8>(p, u8(v)); }
}

// Coding passes: which bytes of the packed word a pass codes, in stream order, and with which channel
// model. R,G,B share one pass (R first); gray and alpha are one-channel passes with their own state.

@final export class PassRgb {
  @inline get alpha(): bool { return false; }
  @inline get nch(): u32 { return 3; }
  @inline get mask(): u32 { return 0x00ffffff; }
  @inline get sh0(): u32 { return 16; }
  @inline get sh1(): u32 { return 8; }
  @inline get sh2(): u32 { return 0; }
  @inline get ch0(): u32 { return 0; }
  @inline get ch1(): u32 { return 1; }
  @inline get ch2(): u32 { return 2; }
  @inline get ctxOff(): usize { return OFF_CTX_MAIN; }
  @inline get candOff(): usize { return OFF_CAND_MAIN; }
}

@final export class PassGray {
  @inline get alpha(): bool { return false; }
  @inline get nch(): u32 { return 1; }
  @inline get mask(): u32 { return 0x000000ff; }
  @inline get sh0(): u32 { return 0; }
  @inline get sh1(): u32 { return 0; }
  @inline get sh2(): u32 { return 0; }
  @inline get ch0(): u32 { return 0; }
  @inline get ch1(): u32 { return 0; }
  @inline get ch2(): u32 { return 0; }
  @inline get ctxOff(): usize { return OFF_CTX_MAIN; }
  @inline get candOff(): usize { return OFF_CAND_MAIN; }
}

@final export class PassAlpha {
  @inline get alpha(): bool { return true; }
  @inline get nch(): u32 { return 1; }
  @inline get mask(): u32 { return 0xff000000; }
  @inline get sh0(): u32 { return 24; }
  @inline get sh1(): u32 { return 0; }
  @inline get sh2(): u32 { return 0; }
  @inline get ch0(): u32 { return 3; }
  @inline get ch1(): u32 { return 0; }
  @inline get ch2(): u32 { return 0; }
  @inline get ctxOff(): usize { return OFF_CTX_ALPHA; }
  @inline get candOff(): usize { return OFF_CAND_ALPHA; }
}

/** Residual symbol of every byte: r = (cur − pred) mod 2^bpc mapped 0,+1,−1,+2… → 0,2,1,4… */
@inline export function symbols4<F>(cur: u32, pred: u32): u32 {
  if (changetype<F>(0).bpc == 8) {
    const r = sub4(cur, pred);
    return ((r << 1) & 0xfefefefe) ^ (((r >> 7) & 0x01010101) * 0xff);
  } else {
    const r = ((cur | 0x80808080) - pred) & 0x1f1f1f1f;
    return ((r << 1) & 0x1e1e1e1e) ^ (((r >> 4) & 0x01010101) * 0x1f);
  }
}

/** Inverse of symbols4: the pixel value from its prediction and symbols. */
@inline export function values4<F>(sym: u32, pred: u32): u32 {
  if (changetype<F>(0).bpc == 8) {
    const r = ((sym >> 1) & 0x7f7f7f7f) ^ ((sym & 0x01010101) * 0xff);
    return add4(r, pred);
  } else {
    const r = ((sym >> 1) & 0x0f0f0f0f) ^ ((sym & 0x01010101) * 0x1f);
    return (r + pred) & 0x1f1f1f1f;
  }
}

/** Bucket × 2 of every byte's symbol, plus the layout's channel bias (see PxRgb32.bias). */
@inline export function buckets4<F>(sym: u32, bias: u32): u32 {
  const t = changetype<F>(0).bucket;
  return ((u32(load<u8>(t + (sym & 0xff))) | (u32(load<u8>(t + ((sym >> 8) & 0xff))) << 8) |
    (u32(load<u8>(t + ((sym >> 16) & 0xff))) << 16) | (u32(load<u8>(t + (sym >> 24))) << 24)) << 1) + bias;
}
