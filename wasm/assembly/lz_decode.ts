// SPICE LZ decoder. Output keeps the stream's pixel layout (RGB32/RGBA/XXXA: 4 bytes with the pad
// byte 0 for RGB32, RGB24: 3, RGB16: 2, palettes and A8: packed bytes, no palette lookup).
//
// Every input read, output write and back-reference is checked: a truncated, corrupt or random
// stream yields a negative error code, never an access outside the given buffers.
import {
  LZ_MAGIC, LZ_VERSION, LZ_RGB16, LZ_RGB24, LZ_RGB32, LZ_RGBA, LZ_XXXA, KRgb32, KRgb24, KRgb16,
  KByte, KAlpha, checkSizes, unitCount, readBE32, spreadRows, copyMatch, copyLiterals,
} from "./lz_common";
import { ERR_ARGS, ERR_OUTPUT, ERR_TRUNCATED, ERR_MAGIC, ERR_VERSION, ERR_CORRUPT, ERR_TRAILING } from "./errors";

const MAX_DISTANCE: usize = 8191;
const HEADER_BYTES: usize = 28;

/**
 * Decodes one pass of `n` units into `out`; returns the input position after it, or a negative
 * error. Specialised per kind K.
 */
function decompress<K>(ip: usize, inEnd: usize, out: usize, n: usize): isize {
  const K = changetype<K>(0);
  const ob = K.obpp;
  const lb = K.litBytes;
  let op = out;
  let done: usize = 0;
  for (;;) {
    if (ip >= inEnd) return ERR_TRUNCATED;
    const ctrl = <usize>load<u8>(ip++);
    if (ctrl >= 32) {
      let len = (ctrl >> 5) - 1;
      let ofs = (ctrl & 31) << 8;
      if (len == 6) {
        let code: usize;
        do {
          if (ip >= inEnd) return ERR_TRUNCATED;
          code = <usize>load<u8>(ip++);
          len += code;
          if (len > n) return ERR_CORRUPT;
        } while (code == 255);
      }
      if (ip >= inEnd) return ERR_TRUNCATED;
      const code = <usize>load<u8>(ip++);
      ofs += code;
      if (code == 255 && ofs == (31 << 8) + 255) {
        if (inEnd - ip < 2) return ERR_TRUNCATED;
        ofs = ((<usize>load<u8>(ip) << 8) | <usize>load<u8>(ip, 1)) + MAX_DISTANCE;
        ip += 2;
      }
      if (K.cat == 2) len += 3;
      else if (K.cat == 1) len += 2;
      else len += 1;
      ofs += 1;
      if (ofs > done || len > n - done) return ERR_CORRUPT;
      copyMatch<K>(op, len, ofs);
      op += len * ob;
      done += len;
    } else {
      const cnt = ctrl + 1;
      if (cnt > n - done) return ERR_CORRUPT;
      if (cnt * lb > inEnd - ip) return ERR_TRUNCATED;
      ip = copyLiterals<K>(op, ip, cnt, inEnd);
      op += cnt * ob;
      done += cnt;
    }
    if (done >= n) break;
  }
  return <isize>ip;
}

// header of the last parsed stream
let hType: i32 = 0;
let hWidth: i32 = 0;
let hHeight: i32 = 0;
let hStride: i32 = 0;
let hTopDown: i32 = 0;

function parseHeader(inPtr: usize, inLen: usize): i32 {
  if (inLen < HEADER_BYTES) return ERR_TRUNCATED;
  if (readBE32(inPtr) != LZ_MAGIC) return ERR_MAGIC;
  if (readBE32(inPtr + 4) != LZ_VERSION) return ERR_VERSION;
  const type = <i32>readBE32(inPtr + 8);
  const width = <i32>readBE32(inPtr + 12);
  const height = <i32>readBE32(inPtr + 16);
  const stride = <i32>readBE32(inPtr + 20);
  const err = checkSizes(type, width, height, stride);
  if (err != 0) return err;
  hType = type;
  hWidth = width;
  hHeight = height;
  hStride = stride;
  hTopDown = readBE32(inPtr + 24) != 0 ? 1 : 0;
  return 0;
}

/** Output bytes per row of the decoded image (the header's stride for palettes, 1 per A8 pixel). */
function outRowBytes(): usize {
  const t = hType;
  if (t == LZ_RGB32 || t == LZ_RGBA || t == LZ_XXXA) return <usize>hWidth * 4;
  if (t == LZ_RGB24) return <usize>hWidth * 3;
  if (t == LZ_RGB16) return <usize>hWidth * 2;
  return <usize>hStride;
}

/**
 * Reads an LZ header. Writes six i32 at `infoPtr`: type, width, height, stride (as in the stream),
 * topDown (0/1) and the decoded row size in bytes. Returns 0 or a negative error.
 */
export function lzDecodeHeader(inPtr: usize, inLen: usize, infoPtr: usize): i32 {
  const err = parseHeader(inPtr, inLen);
  if (err != 0) return err;
  store<i32>(infoPtr, hType);
  store<i32>(infoPtr, hWidth, 4);
  store<i32>(infoPtr, hHeight, 8);
  store<i32>(infoPtr, hStride, 12);
  store<i32>(infoPtr, hTopDown, 16);
  store<i32>(infoPtr, <i32>outRowBytes(), 20);
  return 0;
}

/**
 * Decodes a whole LZ stream of `inLen` bytes into `outPtr`, rows `outStride` bytes apart (0: packed).
 * Returns the number of input bytes used (all of them), or a negative error.
 */
export function lzDecode(inPtr: usize, inLen: usize, outPtr: usize, outCapacity: usize, outStride: usize): isize {
  const err = parseHeader(inPtr, inLen);
  if (err != 0) return err;
  const rowBytes = outRowBytes();
  const rows = <usize>hHeight;
  if (outStride == 0) outStride = rowBytes;
  if (outStride < rowBytes) return ERR_ARGS;
  if (outCapacity < outStride * (rows - 1) + rowBytes) return ERR_OUTPUT;
  const n = unitCount(hType, hWidth, hHeight, hStride);
  const inEnd = inPtr + inLen;
  let ip = <isize>(inPtr + HEADER_BYTES);
  switch (hType) {
    case LZ_RGB32: ip = decompress<KRgb32>(<usize>ip, inEnd, outPtr, n); break;
    case LZ_RGBA: {
      ip = decompress<KRgb32>(<usize>ip, inEnd, outPtr, n);
      if (ip >= 0) ip = decompress<KAlpha>(<usize>ip, inEnd, outPtr, n);
      break;
    }
    case LZ_XXXA: {
      memory.fill(outPtr, 0, n * 4);
      ip = decompress<KAlpha>(<usize>ip, inEnd, outPtr, n);
      break;
    }
    case LZ_RGB24: ip = decompress<KRgb24>(<usize>ip, inEnd, outPtr, n); break;
    case LZ_RGB16: ip = decompress<KRgb16>(<usize>ip, inEnd, outPtr, n); break;
    default: ip = decompress<KByte>(<usize>ip, inEnd, outPtr, n); break;
  }
  if (ip < 0) return ip;
  if (<usize>ip != inEnd) return ERR_TRAILING;
  spreadRows(outPtr, rowBytes, outStride, rows);
  return <isize>inLen;
}
