// SPICE GLZ decoder for RGB32 and RGBA streams, decoding a sequence of images in id order.
//
// Decoded images stay in a window (a ring of 2 × windowPixels pixels of 4 bytes, as in the encoder)
// so later images can copy from them. An image's header says how far back its window reaches
// (win_head_dist); older images are dropped. Every read, write and reference (in-image distance,
// referenced image id, pixel offset and length within that image) is checked; a bad stream gives a
// negative error and leaves the window as it was apart from images it asked to drop.
import {
  LZ_MAGIC, LZ_VERSION, LZ_RGB32, LZ_RGBA, KRgb32, KAlpha, readBE32, copyMatch, copyLiterals,
} from "./lz_common";
import {
  ERR_ARGS, ERR_OUTPUT, ERR_TRUNCATED, ERR_MAGIC, ERR_VERSION, ERR_TYPE, ERR_SIZE, ERR_CORRUPT, ERR_TRAILING,
  ERR_STATE, ERR_WINDOW, ERR_MISSING, ERR_ORDER,
} from "./errors";

const HEADER_BYTES: usize = 33;
const MAX_WINDOW: u32 = 1 << 25;

// window records, a ring of REC_BYTES each, oldest at recHead
const REC_BYTES: usize = 16;
const R_ID = 0; // u64
const R_START = 8; // u32 first pixel in storage
const R_SIZE = 12; // u32 pixels

let limit: u32 = 0;
let storage: usize = 0;
let storageLimit: u32 = 0;
let recs: usize = 0;
let recCap: u32 = 0;
let recHead: u32 = 0;
let recCount: u32 = 0;
let cursor: u32 = 0;

// the last decoded (or parsed) image
let dType: i32 = 0;
let dWidth: i32 = 0;
let dHeight: i32 = 0;
let dTopDown: i32 = 0;
let dId: u64 = 0;
let dHeadDist: u32 = 0;
let dPtr: usize = 0;

@inline function rec(i: u32): usize {
  return recs + <usize>((recHead + i) % recCap) * REC_BYTES;
}

/** Sets up (or resets) the decoder with an empty window of `windowPixels` pixels. */
export function glzDecoderInit(windowPixels: u32): i32 {
  if (windowPixels == 0 || windowPixels > MAX_WINDOW) return ERR_ARGS;
  if (windowPixels > storageLimit) {
    storage = heap.alloc(<usize>windowPixels * 8);
    storageLimit = windowPixels;
    // touch the pages now rather than during the first decodes
    memory.fill(storage, 0, <usize>windowPixels * 8);
  }
  if (recs == 0) {
    recCap = 256;
    recs = heap.alloc(<usize>recCap * REC_BYTES);
  }
  limit = windowPixels;
  recHead = 0;
  recCount = 0;
  cursor = 0;
  dPtr = 0;
  return 0;
}

function pushRecord(id: u64, start: u32, size: u32): void {
  if (recCount == recCap) {
    const cap = recCap * 2;
    const nr = heap.alloc(<usize>cap * REC_BYTES);
    for (let i: u32 = 0; i < recCount; i++) memory.copy(nr + <usize>i * REC_BYTES, rec(i), REC_BYTES);
    recs = nr;
    recCap = cap;
    recHead = 0;
  }
  const r = rec(recCount);
  store<u64>(r, id, R_ID);
  store<u32>(r, start, R_START);
  store<u32>(r, size, R_SIZE);
  recCount++;
}

@inline function dropOldest(): void {
  recHead = (recHead + 1) % recCap;
  recCount--;
}

function parseHeader(inPtr: usize, inLen: usize): i32 {
  if (inLen < HEADER_BYTES) return ERR_TRUNCATED;
  if (readBE32(inPtr) != LZ_MAGIC) return ERR_MAGIC;
  if (readBE32(inPtr + 4) != LZ_VERSION) return ERR_VERSION;
  const tb = <i32>load<u8>(inPtr, 8);
  const type = tb & 15;
  if (type != LZ_RGB32 && type != LZ_RGBA) return ERR_TYPE;
  const width = readBE32(inPtr + 9);
  const height = readBE32(inPtr + 13);
  const stride = readBE32(inPtr + 17);
  if (width == 0 || height == 0 || width > 0x7fffffff || height > 0x7fffffff) return ERR_SIZE;
  if (<u64>stride != <u64>width * 4) return ERR_SIZE;
  if (<u64>width * <u64>height > <u64>MAX_WINDOW) return ERR_SIZE;
  dType = type;
  dWidth = <i32>width;
  dHeight = <i32>height;
  dTopDown = (tb >> 4) != 0 ? 1 : 0;
  dId = (<u64>readBE32(inPtr + 21) << 32) | <u64>readBE32(inPtr + 25);
  dHeadDist = readBE32(inPtr + 29);
  return 0;
}

/** Decodes one pass of n pixels into out; returns the input position after it or an error. */
function decompress<K>(ip: usize, inEnd: usize, out: usize, n: usize, curId: u64): isize {
  const K = changetype<K>(0);
  const lb = K.litBytes;
  let op = out;
  let done: usize = 0;
  for (;;) {
    if (ip >= inEnd) return ERR_TRUNCATED;
    const ctrl = <usize>load<u8>(ip++);
    if (ctrl >= 32) {
      let len = ctrl >> 5;
      const pixFlag = (ctrl >> 4) & 1;
      let pofs = ctrl & 15;
      if (len == 7) {
        let c: usize;
        do {
          if (ip >= inEnd) return ERR_TRUNCATED;
          c = <usize>load<u8>(ip++);
          len += c;
          if (len > n) return ERR_CORRUPT;
        } while (c == 255);
      }
      if (inEnd - ip < 2) return ERR_TRUNCATED;
      pofs += <usize>load<u8>(ip++) << 4;
      let code = <usize>load<u8>(ip++);
      const imgBytes = (code >> 6) & 3;
      let imageDist: u64 = 0;
      if (pixFlag == 0) {
        imageDist = <u64>(code & 0x3f);
        if (<usize>(inEnd - ip) < imgBytes) return ERR_TRUNCATED;
        for (let i: usize = 0; i < imgBytes; i++) imageDist += <u64>load<u8>(ip++) << <u64>(6 + 8 * i);
      } else {
        const veryFar = (code >> 5) & 1;
        pofs += (code & 0x1f) << 12;
        if (<usize>(inEnd - ip) < imgBytes + veryFar) return ERR_TRUNCATED;
        for (let i: usize = 0; i < imgBytes; i++) imageDist += <u64>load<u8>(ip++) << <u64>(8 * i);
        if (veryFar) pofs += <usize>load<u8>(ip++) << 17;
      }
      if (K.cat == 2) len += 2;
      if (len == 0 || len > n - done) return ERR_CORRUPT;
      if (imageDist == 0) {
        pofs += 1;
        if (pofs > done) return ERR_CORRUPT;
        copyMatch<K>(op, len, pofs);
      } else {
        // absolute pixel offset in an earlier image of the window
        if (imageDist > curId || recCount == 0) return ERR_MISSING;
        const refId = curId - imageDist;
        const oldest = load<u64>(rec(0), R_ID);
        if (refId < oldest || refId - oldest >= <u64>recCount) return ERR_MISSING;
        const r = rec(<u32>(refId - oldest));
        const size = <usize>load<u32>(r, R_SIZE);
        if (pofs > size || len > size - pofs) return ERR_CORRUPT;
        const ref = storage + (<usize>load<u32>(r, R_START) + pofs) * 4;
        if (K.cat == 2) {
          for (let i: usize = 0; i < len; i++) K.copyUnit(op + i * 4, ref + i * 4);
        } else {
          memory.copy(op, ref, len * 4);
        }
      }
      op += len * 4;
      done += len;
    } else {
      const cnt = ctrl + 1;
      if (cnt > n - done) return ERR_CORRUPT;
      if (cnt * lb > inEnd - ip) return ERR_TRUNCATED;
      ip = copyLiterals<K>(op, ip, cnt, inEnd);
      op += cnt * 4;
      done += cnt;
    }
    if (done >= n) break;
  }
  return <isize>ip;
}

/** Copies `rows` packed rows from src to rows `stride` bytes apart at dst, the last row first if `reverse`. */
function copyRows(dst: usize, stride: usize, src: usize, rowBytes: usize, rows: usize, reverse: bool): void {
  if (!reverse && stride == rowBytes) {
    memory.copy(dst, src, rowBytes * rows);
    return;
  }
  for (let y: usize = 0; y < rows; y++) {
    memory.copy(dst + (reverse ? rows - 1 - y : y) * stride, src + y * rowBytes, rowBytes);
  }
}

/**
 * Reads a GLZ header without decoding. Writes at infoPtr eight i32: type, width, height, topDown,
 * image id (low, high 32 bits), win_head_dist, 0. Returns 0 or a negative error.
 */
export function glzDecodeHeader(inPtr: usize, inLen: usize, infoPtr: usize): i32 {
  const err = parseHeader(inPtr, inLen);
  if (err != 0) return err;
  writeInfo(infoPtr);
  return 0;
}

function writeInfo(infoPtr: usize): void {
  store<i32>(infoPtr, dType);
  store<i32>(infoPtr, dWidth, 4);
  store<i32>(infoPtr, dHeight, 8);
  store<i32>(infoPtr, dTopDown, 12);
  store<u32>(infoPtr, <u32>dId, 16);
  store<u32>(infoPtr, <u32>(dId >> 32), 20);
  store<u32>(infoPtr, dHeadDist, 24);
  store<i32>(infoPtr, 0, 28);
}

/** Where the last decoded image's pixels are in the window (valid until the next decode). */
export function glzDecodedPtr(): usize {
  return dPtr;
}

/**
 * Decodes the next image of the stream. Its pixels stay in the window (see glzDecodedPtr), packed,
 * for later images to copy from; when outPtr is not 0 they are also copied there with rows outStride
 * bytes apart (0: packed), in stream order or, when `topFirst` is not 0, top row first (a bottom-up
 * image's rows in reverse). Nothing is written there unless the image decodes.
 * `infoPtr` (if not 0) receives the header as glzDecodeHeader writes it.
 * Returns the input bytes used (all of them) or a negative error.
 */
export function glzDecode(inPtr: usize, inLen: usize, outPtr: usize, outCapacity: usize,
                          outStride: usize, infoPtr: usize, topFirst: i32): isize {
  if (storage == 0) return ERR_STATE;
  const err = parseHeader(inPtr, inLen);
  if (err != 0) return err;
  const n = <usize>dWidth * <usize>dHeight;
  if (n > <usize>limit) return ERR_WINDOW;
  const rowBytes = <usize>dWidth * 4;
  if (outPtr != 0) {
    if (outStride == 0) outStride = rowBytes;
    if (outStride < rowBytes) return ERR_ARGS;
    if (<u64>outCapacity < <u64>outStride * <u64>(dHeight - 1) + <u64>rowBytes) return ERR_OUTPUT;
  }
  const id = dId;
  if (recCount > 0 && id != load<u64>(rec(recCount - 1), R_ID) + 1) return ERR_ORDER;
  if (<u64>dHeadDist > id) return ERR_CORRUPT;

  // drop what the encoder's window no longer holds
  const keepFrom = id - <u64>dHeadDist;
  while (recCount > 0 && load<u64>(rec(0), R_ID) < keepFrom) dropOldest();

  // place the image in storage and drop what it would overwrite
  let pos = cursor;
  if (<u64>cursor + <u64>n > <u64>limit * 2) {
    pos = 0;
    while (recCount > 0 && load<u32>(rec(0), R_START) >= cursor) dropOldest();
  }
  while (recCount > 0) {
    const r = rec(0);
    const s = <usize>load<u32>(r, R_START);
    if (s < <usize>pos + n && <usize>pos < s + <usize>load<u32>(r, R_SIZE)) dropOldest();
    else break;
  }

  const out = storage + <usize>pos * 4;
  const inEnd = inPtr + inLen;
  let ip = decompress<KRgb32>(inPtr + HEADER_BYTES, inEnd, out, n, id);
  if (ip >= 0 && dType == LZ_RGBA) ip = decompress<KAlpha>(<usize>ip, inEnd, out, n, id);
  if (ip < 0) return ip;
  if (<usize>ip != inEnd) return ERR_TRAILING;

  pushRecord(id, pos, <u32>n);
  cursor = pos + <u32>n;
  dPtr = out;
  if (infoPtr != 0) writeInfo(infoPtr);
  if (outPtr != 0) copyRows(outPtr, outStride, out, rowBytes, <usize>dHeight, topFirst != 0 && dTopDown == 0);
  return <isize>inLen;
}
