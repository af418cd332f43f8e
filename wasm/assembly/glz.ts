// SPICE GLZ encoder (spice-server's glz-encoder), byte-exact for one encoder on one dictionary with
// every image given as one chunk: the coder (spice-server's glz-encode templates). It hashes three
// pixels, looks the hash up in the dictionary's table (glz_dict.ts), checks and extends the candidate
// match in this image or an earlier one of the window, and emits literals and references.
import {
  LZ_MAGIC, LZ_VERSION, LZ_RGB32, LZ_RGBA, MAX_COPY, finishLiterals, KRgb32, KAlpha, passBound,
  packRows, putBE32, rgb32RunEnd, rgb32MatchEnd,
} from "./lz_common";
import { ERR_ARGS, ERR_OUTPUT, ERR_STATE, ERR_WINDOW } from "./errors";
import {
  HASH_MASK, MAX_WINDOW, S_ID, S_START, S_SIZE, S_TYPE, S_TAG, storage, htab, ktab, segFresh, headDist,
  wide, keysNarrow, pristine, seg, windowLimit, addImage, beginFirstImage, widenKeys,
} from "./glz_dict";

const HEADER_BYTES: usize = 33;

const MAX_PIXEL_SHORT_DISTANCE: u64 = 4096;
const MAX_PIXEL_MEDIUM_DISTANCE: u64 = 131072;
const MAX_PIXEL_LONG_DISTANCE: u64 = 33554432;
const MAX_IMAGE_DIST: u64 = 16777215;

// match results of doMatch
let mImageDist: u64 = 0;
let mPixDist: u64 = 0;

/**
 * Hash entry access, one class per table layout (see glz_dict.ts): ENarrow and EWide for the u32
 * and u64 entries, EFirst for the first image's pass.
 *
 * The key table lets the RGB pass reject nearly every candidate whose first pixel differs from the
 * coded one, as doMatch would, without reading the window: that read waits on the entry, itself a
 * cache miss, and made later incompressible 1080p images three to four times slower. The RGB pass
 * reads and writes a key next to each other (with the write in putKey, after the match, it measured
 * four times slower). `put` writes the entry and its key (it takes the address of the entry's unit);
 * `putEntry` the entry alone. An entry whose key tag is not its segment's current one gets the full check.
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
 * (beginFirstImage), so that every entry is checked alike: a branch on whether an entry is fresh,
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
/** The tag of the segment being coded, shifted into place (set by compress). */
let putTag: u32 = 0;
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

/** Masked hashes of eight consecutive positions (RGB32), computed together by hash4. */
const HBUF: usize = memory.data(32, 16);

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

/** putMatch for an image distance of 0 (a reference into the image being coded), its byte pairs in single u16 stores. */
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
  if (n > <u64>windowLimit()) return ERR_WINDOW;
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
    beginFirstImage(rgbKey(load<u32>(storage + <usize>load<u32>(r, S_START) * 4)));
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
