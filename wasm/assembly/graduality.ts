// spice-server's "is this photo-like" test (spice-bitmap-utils' graduality level) for 32-bit B,G,R,X
// images, where the auto compression modes use it: every 15th pixel, starting at width/2 of row 0 and
// running on across rows, is compared with its right, lower and lower-right neighbours. An identical
// pair scores +0.5 (a sample whose three pairs are identical scores 0), a channel difference of 60 or
// more +1, anything else -0.25. Samples without a right or lower neighbour are skipped. The mean over
// 3 × samples is the score; below -0.03 is HIGH (photo-like), below 0.002 MEDIUM, else LOW.

const SAMPLE_JUMP: i32 = 15;
const DIFF_THRESHOLD: i32 = 60;

@inline function channelDiff(p: u32, q: u32, shift: u32): i32 {
  return abs<i32>(<i32>((p >> shift) & 0xff) - <i32>((q >> shift) & 0xff));
}

/** A pair's score in quarters (+0.5 → 2, +1 → 4, -0.25 → -1), so the sum stays an exact integer. */
@inline function pairScore4(p: u32, q: u32): i32 {
  if (((p ^ q) & 0xffffff) == 0) return 2; // +0.5, in quarters
  const b = channelDiff(p, q, 0), g = channelDiff(p, q, 8), r = channelDiff(p, q, 16);
  if (b >= DIFF_THRESHOLD || g >= DIFF_THRESHOLD || r >= DIFF_THRESHOLD) return 4; // +1
  return -1; // -0.25
}

/** The graduality score of the image at `ptr` (the mean pair score; 0 when no pixel can be sampled). */
export function gradualityScore(ptr: usize, width: i32, height: i32, stride: i32): f64 {
  let sum: i64 = 0; // in quarters
  let samples: i64 = 0;
  const total = <i64>width * <i64>height;
  let y: i32 = 0;
  let x: i32 = width >> 1;
  for (let i: i64 = x; i < total; i += SAMPLE_JUMP) {
    // i = y × width + x, advanced without a division per sample
    while (x >= width) {
      x -= width;
      y++;
    }
    if (x + 1 < width && y + 1 < height) {
      const p = ptr + <usize>y * <usize>stride + (<usize>x << 2);
      const px = load<u32>(p);
      const a = pairScore4(px, load<u32>(p + 4));
      const b = pairScore4(px, load<u32>(p + stride));
      const c = pairScore4(px, load<u32>(p + stride + 4));
      sum += a == 2 && b == 2 && c == 2 ? 0 : a + b + c;
      samples++;
    }
    x += SAMPLE_JUMP;
  }
  const pairs = samples * 3;
  return samples == 0 ? 0 : <f64>sum / 4.0 / <f64>pairs;
}
