// SPICE GLZ encoder (spice-server's glz-encoder), byte-exact for one encoder on one dictionary with
// every image given as one chunk.
//
// The dictionary window keeps the most recent images, up to `windowPixels` pixels in all. Their
// pixels are copied into window storage owned by this module (a ring of 2 × windowPixels pixels, so
// an image always lies in one piece: see addImage()). The hash table has 2^20 entries of
// (segment index, pixel index). Segment indices are recycled exactly as spice-server recycles them
// (a freed segment is reused first), because a stale hash entry then points into the image that now
// owns the index, and the output depends on that.
import {
  LZ_MAGIC, LZ_VERSION, LZ_RGB32, LZ_RGBA, MAX_COPY, finishLiterals, KRgb32, KAlpha, passBound,
  packRows, putBE32, rgb32RunEnd, rgb32MatchEnd,
} from "./lz_common";
import { ERR_ARGS, ERR_OUTPUT, ERR_STATE, ERR_WINDOW } from "./errors";

const HASH_LOG: u32 = 20;
const HASH_SIZE: usize = 1 << HASH_LOG;
const HASH_MASK: u32 = (1 << HASH_LOG) - 1;
const HEADER_BYTES: usize = 33;
const MAX_WINDOW: u32 = 1 << 25;

const MAX_PIXEL_SHORT_DISTANCE: u64 = 4096;
const MAX_PIXEL_MEDIUM_DISTANCE: u64 = 131072;
const MAX_PIXEL_LONG_DISTANCE: u64 = 33554432;
const MAX_IMAGE_DIST: u64 = 16777215;

const NONE: u32 = 0xffffffff;

// Segment records (one per image): 40 bytes each.
const SEG_BYTES: usize = 40;
const S_ID = 0; // u64 image id
const S_PSF = 8; // u64 pixels that entered the window before this segment
const S_START = 16; // u32 first pixel in window storage
const S_SIZE = 20; // u32 pixels
const S_TYPE = 24; // u32 LZ type, 0 while the segment is free
const S_NEXT = 28; // u32 next segment in window order
const S_TAG = 32; // u32 generation of the index, 0..MAX_TAG (see the key table)

let limit: u32 = 0; // window size in pixels
let storage: usize = 0; // 2 × limit pixels of 4 bytes
let storageLimit: u32 = 0; // the largest limit the storage was allocated for
let htab: usize = 0; // HASH_SIZE × (u32 segment, u32 pixel)
let segs: usize = 0;
let segCap: u32 = 0;
let segFresh: u32 = 0; // segment indices handed out so far
let freeStack: usize = 0; // freed segment indices, last freed on top
let freeTop: u32 = 0;
let winHead: u32 = NONE; // oldest segment in the window
let winTail: u32 = NONE; // newest
let nextId: u64 = 0;
let pixelsSoFar: u64 = 0;
let cursor: u32 = 0; // where the last image ended in storage

// match results of doMatch
let mImageDist: u64 = 0;
let mPixDist: u64 = 0;

/**
 * Hash entry layouts. While fewer than 128 segment indices have been handed out, an entry is one
 * u32 (segment << 25 | pixel): half the memory traffic of the general u64 layout (segment, pixel).
 * The table switches to the wide layout, in place, when the 129th index is handed out.
 *
 * Beside the table, the key table (ktab) holds for each entry a key of its pixel's R, G, B (rgbKey),
 * so that the RGB pass rejects nearly every candidate whose first pixel differs from the coded one,
 * as doMatch would, without reading the window: that read waits on the entry, itself a cache miss,
 * and made later incompressible 1080p images three to four times slower. The RGB pass reads and
 * writes a key next to each other (with the write in putKey, after the match, it measured four
 * times slower). `put` writes the entry and its key (it takes the address of the entry's unit);
 * `putEntry` the entry alone.
 *
 * A key describes the pixel that was there when the entry was written, so it is only trusted while
 * the entry's segment index belongs to the image that wrote it. Key table entries are u16, key |
 * tag << 8, where the tag is the generation of the segment index (S_TAG, bumped each time the index
 * is handed out again); an entry whose tag is not its segment's current one gets the full check.
 * Before a tag comes round again, every entry of that index is given UNKEYED_TAG, which no segment
 * has (retag). A freed index keeps its tag, but a free segment is never usable anyway.
 *
 * The RGB pass of the first image after glzInit uses EFirst, with one-byte keys (no tags yet: every
 * entry is segment 0's, tag 0); widenKeys turns them into the u16 layout before anything else.
 */
@final class ENarrow {
  @inline get first(): bool { return false; }
  @inline get(hv: u32): u64 {
    const v = load<u32>(htab + (<usize>hv << 2));
    return <u64>(v >> 25) | (<u64>(v & 0x1ffffff) << 32);
  }
  @inline putEntry(hv: u32, s: u32, pix: usize): void {
    store<u32>(htab + (<usize>hv << 2), (s << 25) | <u32>pix);
  }
  @inline put(hv: u32, s: u32, pix: usize, p: usize): void {
    this.putEntry(hv, s, pix);
    putKey(hv, p);
  }
}
@final class EWide {
  @inline get first(): bool { return false; }
  @inline get(hv: u32): u64 {
    return load<u64>(htab + (<usize>hv << 3));
  }
  @inline putEntry(hv: u32, s: u32, pix: usize): void {
    store<u64>(htab + (<usize>hv << 3), <u64>s | (<u64>pix << 32));
  }
  @inline put(hv: u32, s: u32, pix: usize, p: usize): void {
    this.putEntry(hv, s, pix);
    putKey(hv, p);
  }
}
/**
 * The first image's RGB pass. Every entry then points into that image (segment 0, so the narrow
 * entry is the pixel index): at pixel 0, as in spice's fresh dictionary (all entries zero), or at a
 * pixel written in this pass. Keys are one byte here: a 1 MiB key table, read at every position,
 * while the 4 MiB entry table is written at every position but read only on a key match (its
 * stores cost less than its loads). The pass starts by writing the fresh entries and their keys
 * (fillFirstTable), so that every entry is checked alike: a branch on whether an entry is fresh,
 * mispredicted on near half of the lookups of a photo, would serialise the cache misses.
 */
@final class EFirst {
  @inline get first(): bool { return true; }
  @inline get(hv: u32): u64 {
    return <u64>load<u32>(htab + (<usize>hv << 2)) << 32;
  }
  @inline putEntry(hv: u32, s: u32, pix: usize): void {
    store<u32>(htab + (<usize>hv << 2), <u32>pix);
  }
  @inline put(hv: u32, s: u32, pix: usize, p: usize): void {
    store<u8>(ktab + <usize>hv, <u8>rgbKey(load<u32>(p)));
    this.putEntry(hv, s, pix);
  }
}
let ktab: usize = 0; // HASH_SIZE × u16 key table (HASH_SIZE × u8 while keysNarrow)
const MAX_TAG: u32 = 254;
const UNKEYED_TAG: u32 = 255;
/** The tag of the segment being coded, shifted into place (set by compress). */
let putTag: u32 = 0;
/** The key table is still in EFirst's one-byte layout (widenKeys runs before the next pass). */
let keysNarrow = false;
/** Set by glzInit: no image coded yet (the first encode writes the table: fillFirstTable). */
let pristine = false;
/** A byte-sized function of a pixel's R, G, B (the bits KRgb32.same compares). */
@inline function rgbKey(px: u32): u32 {
  return ((px & 0xffffff) * 0x9e3779b1) >> 24;
}
/** Writes a u16 key table entry: `key` with the tag of the segment being coded. */
@inline function storeKey(hv: u32, key: u32): void {
  store<u16>(ktab + (<usize>hv << 1), <u16>(key | putTag));
}
@inline function putKey(hv: u32, p: usize): void {
  storeKey(hv, rgbKey(load<u32>(p)));
}

/** Writes the fresh table for EFirst: every entry at pixel 0 of segment 0, with that pixel's key. */
function fillFirstTable(pixel0: u32): void {
  memory.fill(htab, 0, HASH_SIZE * 4);
  memory.fill(ktab, <u8>rgbKey(pixel0), HASH_SIZE);
  keysNarrow = true;
}

/** Turns EFirst's one-byte keys into u16 keys with tag 0 (segment 0's), in place from the top. */
function widenKeys(): void {
  for (let i = <isize>HASH_SIZE - 16; i >= 0; i -= 16) {
    const v = v128.load(ktab + <usize>i);
    v128.store(ktab + (<usize>i << 1), i16x8.extend_low_i8x16_u(v));
    v128.store(ktab + (<usize>i << 1), i16x8.extend_high_i8x16_u(v), 16);
  }
  keysNarrow = false;
}

/** Gives a reused segment index its next tag; before a tag comes round again, unkeys its entries. */
function retag(s: u32): void {
  let tag = load<u32>(seg(s), S_TAG) + 1;
  if (tag > MAX_TAG) {
    tag = 0;
    for (let hv: u32 = 0; hv < <u32>HASH_SIZE; hv++) {
      const rs = wide ? load<u32>(htab + (<usize>hv << 3)) : load<u32>(htab + (<usize>hv << 2)) >> 25;
      if (rs == s) store<u8>(ktab + (<usize>hv << 1), <u8>UNKEYED_TAG, 1);
    }
  }
  store<u32>(seg(s), tag, S_TAG);
}

const NARROW_SEGS: u32 = 128;
let wide = false;

function widenTable(): void {
  for (let i = <isize>HASH_SIZE - 1; i >= 0; i--) {
    const v = load<u32>(htab + (<usize>i << 2));
    store<u64>(htab + (<usize>i << 3), <u64>(v >> 25) | (<u64>(v & 0x1ffffff) << 32));
  }
  wide = true;
}

/** Masked hashes of eight consecutive positions (RGB32), computed together by hash4. */
const HBUF: usize = memory.data(32, 16);
@inline function seg(i: u32): usize {
  return segs + <usize>i * SEG_BYTES;
}

/**
 * Sets up (or resets) the encoder: an empty window of `windowPixels` pixels, image ids from 0.
 * Allocates window storage and the hash table; returns 0 or a negative error.
 */
export function glzInit(windowPixels: u32): i32 {
  if (windowPixels == 0 || windowPixels > MAX_WINDOW) return ERR_ARGS;
  if (windowPixels > storageLimit) {
    storage = heap.alloc(<usize>windowPixels * 8);
    storageLimit = windowPixels;
    // touch the pages now rather than during the first encodes
    memory.fill(storage, 0, <usize>windowPixels * 8);
  }
  if (htab == 0) htab = heap.alloc(HASH_SIZE * 8);
  if (ktab == 0) ktab = heap.alloc(HASH_SIZE * 2);
  if (segs == 0) {
    segCap = 1024;
    segs = heap.alloc(<usize>segCap * SEG_BYTES);
    freeStack = heap.alloc(<usize>segCap * 4);
  }
  limit = windowPixels;
  wide = false;
  pristine = true;
  keysNarrow = false;
  // the tables are written by the first encode (fillFirstTable)
  memory.fill(segs, 0, <usize>segCap * SEG_BYTES);
  segFresh = 0;
  freeTop = 0;
  winHead = NONE;
  winTail = NONE;
  nextId = 0;
  pixelsSoFar = 0;
  cursor = 0;
  return 0;
}

/** Id the next encoded image gets. */
export function glzNextImageId(): f64 {
  return <f64>nextId;
}

/** Number of images in the window. */
export function glzWindowImages(): i32 {
  let n = 0;
  for (let s = winHead; s != NONE; s = load<u32>(seg(s), S_NEXT)) n++;
  return n;
}

function growSegs(): void {
  const cap = segCap * 2;
  const ns = heap.alloc(<usize>cap * SEG_BYTES);
  memory.copy(ns, segs, <usize>segCap * SEG_BYTES);
  memory.fill(ns + <usize>segCap * SEG_BYTES, 0, <usize>segCap * SEG_BYTES);
  const nf = heap.alloc(<usize>cap * 4);
  memory.copy(nf, freeStack, <usize>freeTop * 4);
  segs = ns;
  freeStack = nf;
  segCap = cap;
}

/** Where in window storage (in pixels) the next image of `size` pixels is placed. */
@inline function slotFor(size: u32): u32 {
  return <u64>cursor + <u64>size <= <u64>limit * 2 ? cursor : 0;
}

/**
 * Address in window storage where the next image of `pixels` pixels will be placed, or 0 if it
 * cannot be GLZ-coded there. A caller that writes the image's packed rows there and passes that
 * address to glzEncode saves the copy into the window. The place is handed out only while no image
 * of the window lies in it, so writing there loses nothing even if no encode follows.
 */
export function glzInputPtr(pixels: u32): usize {
  if (storage == 0 || pixels == 0 || pixels > limit) return 0;
  const pos = slotFor(pixels);
  for (let s = winHead; s != NONE; s = load<u32>(seg(s), S_NEXT)) {
    const start = load<u32>(seg(s), S_START);
    if (<u64>pos < <u64>start + <u64>load<u32>(seg(s), S_SIZE) && <u64>start < <u64>pos + <u64>pixels) return 0;
  }
  return storage + <usize>pos * 4;
}

/**
 * Drops the oldest images until an image of `size` pixels fits, then adds it; returns its segment
 * and leaves the distance to the window's oldest image in `headDist`.
 */
let headDist: u32 = 0;
function addImage(type: i32, size: u32): u32 {
  let newHead = NONE;
  if (winHead != NONE) {
    const t = seg(winTail);
    let cur = load<u64>(t, S_PSF) + <u64>load<u32>(t, S_SIZE) - load<u64>(seg(winHead), S_PSF);
    let h = winHead;
    while (cur + <u64>size > <u64>limit) {
      cur -= <u64>load<u32>(seg(h), S_SIZE);
      h = load<u32>(seg(h), S_NEXT);
    }
    newHead = h;
    while (winHead != h) {
      const s = winHead;
      winHead = load<u32>(seg(s), S_NEXT);
      store<u32>(seg(s), 0, S_TYPE);
      store<u32>(freeStack + <usize>freeTop * 4, s);
      freeTop++;
    }
    if (winHead == NONE) winTail = NONE;
  }

  let s: u32;
  if (freeTop > 0) {
    freeTop--;
    s = load<u32>(freeStack + <usize>freeTop * 4);
    retag(s);
  } else {
    if (segFresh == segCap) growSegs();
    s = segFresh++;
    if (segFresh > NARROW_SEGS && !wide) widenTable();
  }
  const pos = slotFor(size);
  cursor = pos + size;
  const r = seg(s);
  store<u64>(r, nextId, S_ID);
  store<u64>(r, pixelsSoFar, S_PSF);
  store<u32>(r, pos, S_START);
  store<u32>(r, size, S_SIZE);
  store<u32>(r, <u32>type, S_TYPE);
  store<u32>(r, NONE, S_NEXT);
  nextId++;
  pixelsSoFar += size;
  if (winTail == NONE) {
    winHead = s;
  } else {
    store<u32>(seg(winTail), s, S_NEXT);
  }
  winTail = s;
  headDist = newHead != NONE ? <u32>(load<u64>(r, S_ID) - load<u64>(seg(newHead), S_ID)) : 0;
  return s;
}

/** Size of a reference's encoding apart from its length bytes. */
@inline function refEncodeSize(imageDist: u64, pixDist: u64): i32 {
  if (pixDist < MAX_PIXEL_SHORT_DISTANCE) {
    if (imageDist < 64) return 3;
    if (imageDist < 16384) return 4;
    if (imageDist < 4194304) return 5;
    return 6;
  }
  let size: i32;
  if (imageDist == 0) size = 3;
  else if (imageDist < 256) size = 4;
  else if (imageDist < 65536) size = 5;
  else size = 6;
  if (pixDist >= MAX_PIXEL_MEDIUM_DISTANCE) size++;
  return size;
}

/** A match's first byte (length, far flag, low 4 bits of the pixel distance) and its length bytes. */
@inline function putLength(op: usize, len: usize, far: u32, pd: u32): usize {
  if (len < 7) {
    store<u8>(op++, <u8>((len << 5) + far + (pd & 15)));
  } else {
    store<u8>(op++, <u8>((7 << 5) + far + (pd & 15)));
    for (len -= 7; len >= 255; len -= 255) store<u8>(op++, 255);
    store<u8>(op++, <u8>len);
  }
  return op;
}

function putMatch(op: usize, imageDist: u64, pixDist: u64, len: usize): usize {
  const pd = <u32>pixDist;
  const id = <u32>imageDist;
  const far: u32 = pixDist < MAX_PIXEL_SHORT_DISTANCE ? 0 : 16;
  op = putLength(op, len, far, pd);
  store<u8>(op++, <u8>(pd >> 4));
  if (far == 0) {
    if (imageDist < 64) {
      store<u8>(op++, <u8>(id & 0x3f));
    } else if (imageDist < 16384) {
      store<u8>(op++, <u8>(64 + (id & 0x3f)));
      store<u8>(op++, <u8>(id >> 6));
    } else if (imageDist < 4194304) {
      store<u8>(op++, <u8>(128 + (id & 0x3f)));
      store<u8>(op++, <u8>(id >> 6));
      store<u8>(op++, <u8>(id >> 14));
    } else {
      store<u8>(op++, <u8>(192 + (id & 0x3f)));
      store<u8>(op++, <u8>(id >> 6));
      store<u8>(op++, <u8>(id >> 14));
      store<u8>(op++, <u8>(id >> 22));
    }
    return op;
  }
  const longDist: u32 = pixDist < MAX_PIXEL_MEDIUM_DISTANCE ? 0 : 32;
  const hi = (pd >> 12) & 31;
  if (imageDist == 0) {
    store<u8>(op++, <u8>(longDist + hi));
  } else if (imageDist < 256) {
    store<u8>(op++, <u8>(longDist + 64 + hi));
    store<u8>(op++, <u8>id);
  } else if (imageDist < 65536) {
    store<u8>(op++, <u8>(longDist + 128 + hi));
    store<u8>(op++, <u8>id);
    store<u8>(op++, <u8>(id >> 8));
  } else {
    store<u8>(op++, <u8>(longDist + 192 + hi));
    store<u8>(op++, <u8>id);
    store<u8>(op++, <u8>(id >> 8));
    store<u8>(op++, <u8>(id >> 16));
  }
  if (longDist != 0) store<u8>(op++, <u8>(pd >> 17));
  return op;
}

/** putMatch for an image distance of 0 (a reference into the image being coded). */
@inline function putMatch0(op: usize, pd: u32, len: usize): usize {
  const far: u32 = pd < <u32>MAX_PIXEL_SHORT_DISTANCE ? 0 : 16;
  op = putLength(op, len, far, pd);
  if (far == 0) {
    store<u16>(op, <u16>((pd >> 4) & 0xff));
    return op + 2;
  }
  const hi = (pd >> 12) & 31;
  if (pd < <u32>MAX_PIXEL_MEDIUM_DISTANCE) {
    store<u16>(op, <u16>(((pd >> 4) & 0xff) | (hi << 8)));
    return op + 2;
  }
  store<u16>(op, <u16>(((pd >> 4) & 0xff) | ((32 + hi) << 8)));
  store<u8>(op, <u8>(pd >> 17), 2);
  return op + 3;
}

/**
 * Length of the match between the hash candidate (segment rs, pixel rp) and ip, or 0 when it is
 * unusable; sets mImageDist/mPixDist. `ipIdx` is ip's pixel index in the current image.
 */
@inline function doMatch<K>(rs: u32, rp: u32, ip: usize, ipIdx: usize, ipBound: usize, curId: u64): usize {
  const K = changetype<K>(0);
  const bpp = K.bpp;
  const minRef: i64 = K.cat == 2 ? 4 : 2;
  const maxRef: usize = K.cat == 2 ? 7 : K.cat == 1 ? 3 : 2;
  const r = seg(rs);
  const rSize = load<u32>(r, S_SIZE);
  if (<i64>rp > <i64>rSize - minRef) return 0;
  const rBase = storage + <usize>load<u32>(r, S_START) * bpp;
  let ref = rBase + <usize>rp * bpp;
  const refLimit = rBase + <usize>rSize * bpp;
  let tip = ip;
  if (!K.same(ref, tip)) return 0;
  if (!K.same(ref + bpp, tip + bpp)) return 0;
  ref += 2 * bpp;
  tip += 2 * bpp;
  if (K.cat == 2) {
    if (!K.same(ref, tip)) return 0;
    if (!K.same(ref + bpp, tip + bpp)) return 0;
    ref += 2 * bpp;
    tip += 2 * bpp;
  }
  const imageDist = curId - load<u64>(r, S_ID);
  const pixDist: u64 = imageDist == 0 ? <u64>ipIdx - <u64>rp : <u64>rp;
  if (pixDist == 0 || pixDist >= MAX_PIXEL_LONG_DISTANCE || imageDist > MAX_IMAGE_DIST) return 0;
  if (K.simd) {
    let bound = ipBound;
    if (ref >= refLimit) bound = tip;
    else if (refLimit - ref < ipBound - tip) bound = tip + (refLimit - ref);
    if (tip < bound) tip = rgb32MatchEnd(ref, tip, bound);
  } else {
    while (tip < ipBound && ref < refLimit) {
      if (!K.same(ref, tip)) break;
      ref += bpp;
      tip += bpp;
    }
  }
  const len = (tip - ip) / bpp;
  mImageDist = imageDist;
  mPixDist = pixDist;
  if (len > maxRef) return len;
  let need = refEncodeSize(imageDist, pixDist);
  if (K.cat == 0) need /= 3;
  else if (K.cat == 1) need /= 2;
  need++;
  if (len < <usize>need) return 0;
  return len;
}

/** Codes the image in segment s with kind K (one pass); returns the new output position. */
function compress<K, E>(s: u32, op: usize): usize {
  const K = changetype<K>(0);
  const E = changetype<E>(0);
  const bpp = K.bpp;
  const r = seg(s);
  const n = <usize>load<u32>(r, S_SIZE);
  const base = storage + <usize>load<u32>(r, S_START) * bpp;
  const curId = load<u64>(r, S_ID);
  const curType = load<u32>(r, S_TYPE);
  putTag = load<u32>(r, S_TAG) << 8;
  if (n < 4) {
    store<u8>(op++, <u8>(n - 1));
    for (let i: usize = 0; i < n; i++) op = K.emit(op, base + i * bpp);
    return op;
  }
  let lastCopy = op;
  store<u8>(op++, <u8>(MAX_COPY - 1));
  E.put(K.hash(base) & HASH_MASK, s, 0, base);
  op = K.emit(op, base);
  op = K.emit(op, base + bpp);
  let copy: u32 = 2;

  const end = base + n * bpp;
  const ipBound = end - 2 * bpp;
  const ipLimit = end - 6 * bpp;
  let ip = base + 2 * bpp;
  // HBUF holds the hashes of the positions hStart .. hStart + hLen - 1 (RGB32 only)
  let hStart = end;
  let hLen: usize = 0;

  while (ip < ipLimit) {
    const anchor = ip;
    let len: usize = 0;
    let imageDist: u64 = 0;
    let pixDist: u64 = 0;

    if (K.same(ip - bpp, ip) && K.same(ip, ip + bpp) && K.same(ip + bpp, ip + 2 * bpp)) {
      const x = ip + 2 * bpp;
      ip += 3 * bpp;
      if (K.simd) {
        ip = rgb32RunEnd(ip, ipBound, load<u32>(x));
        len = (ip - anchor) / bpp;
      } else {
        len = 3;
        while (ip < ipBound) {
          if (!K.same(ip, x)) break;
          ip += bpp;
          len++;
        }
      }
      pixDist = 1;
    } else {
      let hv: u32;
      if (K.simd) {
        let d = anchor - hStart;
        if (d >= hLen) {
          const mask = i32x4.splat(HASH_MASK);
          v128.store(HBUF, v128.and(K.hash4(anchor), mask));
          hLen = 4 * bpp;
          if (anchor + 10 * bpp <= end) {
            v128.store(HBUF, v128.and(K.hash4(anchor + 4 * bpp), mask), 16);
            hLen = 8 * bpp;
          }
          hStart = anchor;
          d = 0;
        }
        hv = load<u32>(HBUF + d);
      } else {
        hv = K.hash(ip) & HASH_MASK;
      }
      const idx = (anchor - base) / bpp;
      if (E.first) {
        // doMatch for a candidate rp < idx in this image: it is a match when its first two pixels
        // are (image distance 0, so two pixels always pay for the reference). The entry is
        // replaced as E.put does, with the key computed once.
        const slot = htab + (<usize>hv << 2);
        const kslot = ktab + <usize>hv;
        const px = load<u64>(anchor);
        const key = rgbKey(<u32>px);
        const candidateKey = <u32>load<u8>(kslot);
        store<u8>(kslot, <u8>key);
        if (key == candidateKey) {
          const rp = load<u32>(slot);
          const ref = base + (<usize>rp << 2);
          if (((load<u64>(ref) ^ px) & 0xffffff00ffffff) == 0) {
            len = (rgb32MatchEnd(ref + 8, anchor + 8, ipBound) - anchor) >> 2;
            pixDist = <u64>(idx - rp);
          }
        }
        store<u32>(slot, <u32>idx);
      } else {
        const e = E.get(hv);
        const rs = <u32>e;
        // the RGB pass reads the window only if the key admits the candidate (see ENarrow)
        let admit = true;
        if (K.simd) {
          const k = <u32>load<u16>(ktab + (<usize>hv << 1));
          const key = rgbKey(load<u32>(anchor));
          storeKey(hv, key);
          admit = <bool>(<i32>((k & 0xff) == key) | <i32>((k >> 8) != load<u32>(seg(rs), S_TAG)));
        } else {
          putKey(hv, anchor);
        }
        if (admit && (rs == s || (rs < segFresh && load<u32>(seg(rs), S_TYPE) == curType))) {
          len = doMatch<K>(rs, <u32>(e >> 32), ip, idx, ipBound, curId);
          imageDist = mImageDist;
          pixDist = mPixDist;
        }
        E.putEntry(hv, s, idx);
      }
    }

    if (len != 0) {
      if (imageDist == 0) pixDist--;
      if (copy != 0) store<u8>(lastCopy, <u8>(copy - 1));
      else op--;
      copy = 0;
      ip = anchor + (len - 2) * bpp;
      if (K.cat == 1) len -= 1;
      else if (K.cat == 2) len -= 2;
      op = E.first ? putMatch0(op, <u32>pixDist, len) : putMatch(op, imageDist, pixDist, len);
      if (K.cat == 2 || ip > anchor) E.put(K.hash(ip) & HASH_MASK, s, (ip - base) / bpp, ip);
      ip += bpp;
      if (K.cat != 0 || ip > anchor) E.put(K.hash(ip) & HASH_MASK, s, (ip - base) / bpp, ip);
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

  return finishLiterals<K>(op, ip, end, copy, lastCopy);
}

/** Output bytes `glzEncode` may need for an image (negative for unsupported arguments). */
export function glzEncodeBound(type: i32, width: i32, height: i32): isize {
  if ((type != LZ_RGB32 && type != LZ_RGBA) || width <= 0 || height <= 0) return ERR_ARGS;
  const n = <u64>width * <u64>height;
  if (n > <u64>MAX_WINDOW) return ERR_WINDOW;
  let bound = HEADER_BYTES + passBound(<usize>n, 3);
  if (type == LZ_RGBA) bound += passBound(<usize>n, 1);
  return <isize>bound;
}

/**
 * Encodes one image (RGB32 or RGBA, rows `stride` bytes apart) into the dictionary and writes its
 * GLZ stream at outPtr. Packed rows already at glzInputPtr's address are coded where they are; other
 * input is copied into the window first. The image gets the next id; older images are dropped from the window as
 * spice-server drops them. Returns the bytes written or a negative error.
 */
export function glzEncode(type: i32, width: i32, height: i32, stride: i32, topDown: i32,
                          inPtr: usize, outPtr: usize, outCapacity: usize): isize {
  if (storage == 0) return ERR_STATE;
  const bound = glzEncodeBound(type, width, height);
  if (bound < 0) return bound;
  const rowBytes = <usize>width * 4;
  if (<usize>stride < rowBytes) return ERR_ARGS;
  const n = <u64>width * <u64>height;
  if (n > <u64>limit) return ERR_WINDOW;
  if (outCapacity < <usize>bound) return ERR_OUTPUT;

  if (keysNarrow) widenKeys(); // before addImage, which may retag segment 0
  const s = addImage(type, <u32>n);
  const r = seg(s);
  const dst = storage + <usize>load<u32>(r, S_START) * 4;
  if (inPtr != dst || <usize>stride != rowBytes) packRows(dst, inPtr, rowBytes, <usize>stride, <usize>height);

  putBE32(outPtr, LZ_MAGIC);
  putBE32(outPtr + 4, LZ_VERSION);
  store<u8>(outPtr + 8, <u8>((type & 15) | (topDown != 0 ? 16 : 0)));
  putBE32(outPtr + 9, width);
  putBE32(outPtr + 13, height);
  putBE32(outPtr + 17, <u32>rowBytes);
  const id = load<u64>(r, S_ID);
  putBE32(outPtr + 21, <u32>(id >> 32));
  putBE32(outPtr + 25, <u32>id);
  putBE32(outPtr + 29, headDist);

  let op: usize;
  if (pristine) {
    // the first image since glzInit (segment 0, the table fresh)
    pristine = false;
    fillFirstTable(load<u32>(storage + <usize>load<u32>(r, S_START) * 4));
    op = compress<KRgb32, EFirst>(s, outPtr + HEADER_BYTES);
    if (type == LZ_RGBA) {
      widenKeys();
      op = compress<KAlpha, ENarrow>(s, op);
    }
  } else if (wide) {
    op = compress<KRgb32, EWide>(s, outPtr + HEADER_BYTES);
    if (type == LZ_RGBA) op = compress<KAlpha, EWide>(s, op);
  } else {
    op = compress<KRgb32, ENarrow>(s, outPtr + HEADER_BYTES);
    if (type == LZ_RGBA) op = compress<KAlpha, ENarrow>(s, op);
  }
  return <isize>(op - outPtr);
}
