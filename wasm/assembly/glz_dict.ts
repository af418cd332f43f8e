// The GLZ encoder's dictionary (spice-server's glz-encoder-dict): the window of recent images, their
// segment records and ids, the window storage they live in, eviction, and the hash table with its key
// table and their generation tags. The coder (glz.ts) reads all of it and changes it only through the
// functions here.
//
// The window keeps the most recent images, up to `windowPixels` pixels in all. Their pixels are
// copied into window storage owned by this module (a ring of 2 × windowPixels pixels, so an image
// always lies in one piece: see addImage()). Segment indices are recycled exactly as spice-server
// recycles them (a freed segment is reused first), because a stale hash entry then points into the
// image that now owns the index, and the output depends on that.
//
// The hash table has 2^20 entries of (segment index, pixel index). While fewer than 128 segment
// indices have been handed out, an entry is one u32 (segment << 25 | pixel): half the memory traffic
// of the general u64 layout (segment, pixel). The table switches to the wide layout, in place, when
// the 129th index is handed out (widenTable).
//
// Beside it, the key table holds for each entry a key of its pixel (see rgbKey in glz.ts) as a u16,
// key | tag << 8, where the tag is the generation of the entry's segment index (S_TAG, bumped each
// time the index is handed out again): a key is only trusted while its tag is its segment's current
// one. Before a tag comes round again, every entry of that index is given UNKEYED_TAG, which no
// segment has (retag). A freed index keeps its tag, but a free segment is never usable anyway. The
// first image after glzInit is coded with one-byte keys and no tags (every entry is then segment 0's,
// tag 0); widenKeys turns them into the u16 layout.
import { ERR_ARGS } from "./errors";

const HASH_LOG: u32 = 20;
export const HASH_SIZE: usize = 1 << HASH_LOG;
export const HASH_MASK: u32 = (1 << HASH_LOG) - 1;
export const MAX_WINDOW: u32 = 1 << 25;

const NONE: u32 = 0xffffffff;

// Segment records (one per image): 40 bytes each.
const SEG_BYTES: usize = 40;
export const S_ID = 0; // u64 image id
const S_PSF = 8; // u64 pixels that entered the window before this segment
export const S_START = 16; // u32 first pixel in window storage
export const S_SIZE = 20; // u32 pixels
export const S_TYPE = 24; // u32 LZ type, 0 while the segment is free
const S_NEXT = 28; // u32 next segment in window order
export const S_TAG = 32; // u32 generation of the index, 0..MAX_TAG (see the key table)

let limit: u32 = 0; // window size in pixels
export let storage: usize = 0; // 2 × limit pixels of 4 bytes
let storageLimit: u32 = 0; // the largest limit the storage was allocated for
export let htab: usize = 0; // HASH_SIZE × (u32 segment, u32 pixel)
export let ktab: usize = 0; // HASH_SIZE × u16 key table (HASH_SIZE × u8 while keysNarrow)
let segs: usize = 0;
let segCap: u32 = 0;
export let segFresh: u32 = 0; // segment indices handed out so far
let freeStack: usize = 0; // freed segment indices, last freed on top
let freeTop: u32 = 0;
let winHead: u32 = NONE; // oldest segment in the window
let winTail: u32 = NONE; // newest
let nextId: u64 = 0;
let pixelsSoFar: u64 = 0;
let cursor: u32 = 0; // where the last image ended in storage
/** Distance from the image addImage added to the window's oldest image (the header's win_head_dist). */
export let headDist: u32 = 0;

const MAX_TAG: u32 = 254;
const UNKEYED_TAG: u32 = 255;
const NARROW_SEGS: u32 = 128;
/** The hash table has the u64 layout. */
export let wide = false;
/** The key table is still in the first image's one-byte layout (widenKeys runs before the next pass). */
export let keysNarrow = false;
/** Set by glzInit: no image coded yet (the first encode writes the tables: beginFirstImage). */
export let pristine = false;

@inline export function seg(i: u32): usize {
  return segs + <usize>i * SEG_BYTES;
}

/** Window size in pixels. */
@inline export function windowLimit(): u32 {
  return limit;
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
  // the tables are written by the first encode (beginFirstImage)
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

/**
 * Writes the tables for the first image since glzInit, as spice's fresh dictionary has them: every
 * entry at pixel 0 of segment 0 (narrow layout), every key `key0` (that pixel's) in the one-byte layout.
 */
export function beginFirstImage(key0: u32): void {
  pristine = false;
  memory.fill(htab, 0, HASH_SIZE * 4);
  memory.fill(ktab, <u8>key0, HASH_SIZE);
  keysNarrow = true;
}

/** Turns the first image's one-byte keys into u16 keys with tag 0 (segment 0's), in place from the top. */
export function widenKeys(): void {
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

function widenTable(): void {
  for (let i = <isize>HASH_SIZE - 1; i >= 0; i--) {
    const v = load<u32>(htab + (<usize>i << 2));
    store<u64>(htab + (<usize>i << 3), <u64>(v >> 25) | (<u64>(v & 0x1ffffff) << 32));
  }
  wide = true;
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
export function addImage(type: i32, size: u32): u32 {
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
