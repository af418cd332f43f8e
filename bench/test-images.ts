// Deterministic test images for codec tests and benchmarks: B,G,R,X rows (X = 0), top-down,
// stride = width × 4, integer arithmetic only, so any language can make the same bytes. A desktop
// (windows, title bars and random glyph text on a blue background), a photo (two octaves of bilinear
// value noise plus grain) and noise. At 1920×1080 their SHA-256s are fixed (test/test-images.test.ts),
// so benchmark figures from different builds and machines are about the same pixels.

export type TestImageKind = "desktop" | "photo" | "noise";

/** xorshift32 generator as in the recipe. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Generates a `width`×`height` BGRX image of the given kind. */
export function generateImage(kind: TestImageKind, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 4);
  if (kind === "desktop") desktop(out, width, height);
  else if (kind === "photo") photo(out, width, height);
  else if (kind === "noise") noise(out, width, height);
  else throw new Error(`unknown test image kind '${String(kind)}'`);
  return out;
}

function desktop(out: Uint8Array, width: number, height: number): void {
  const r = xorshift32(0x01234567);
  const put = (x: number, y: number, rgb: number): void => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const o = (y * width + x) * 4;
    out[o] = rgb & 0xff;
    out[o + 1] = (rgb >>> 8) & 0xff;
    out[o + 2] = (rgb >>> 16) & 0xff;
    out[o + 3] = 0;
  };
  const fill = (x0: number, y0: number, w: number, h: number, rgb: number): void => {
    for (let y = Math.max(0, y0); y < Math.min(height, y0 + h); y++) {
      for (let x = Math.max(0, x0); x < Math.min(width, x0 + w); x++) put(x, y, rgb);
    }
  };
  fill(0, 0, width, height, 0x3a6ea5);
  fill(0, 1040, width, 40, 0x202020);
  for (let i = 0; i < 8; i++) fill(8 + 160 * i, 1046, 150, 28, i === 2 ? 0x505050 : 0x333333);
  const glyphs: number[][] = [];
  for (let g = 0; g < 64; g++) {
    const rows: number[] = [];
    for (let y = 0; y < 9; y++) rows.push(r() & 31);
    glyphs.push(rows);
  }
  const windows: [number, number, number, number, number][] = [
    [60, 50, 900, 640, 0xdddddd],
    [300, 200, 1100, 700, 0xdddddd],
    [1000, 120, 860, 520, 0xdddddd],
    [520, 330, 980, 600, 0x2b579a],
  ];
  for (const [x, y, w, h, title] of windows) {
    fill(x, y, w, h, 0x404040);
    fill(x + 1, y + 1, w - 2, 30, title);
    fill(x + 1, y + 31, w - 2, h - 32, 0xffffff);
    for (let b = 0; b < 3; b++) fill(x + w - 30 - 30 * b, y + 8, 16, 16, b === 0 ? 0xe81123 : 0x999999);
    for (let ly = y + 40; ly + 13 <= y + h - 8; ly += 13) {
      const lineLen = 20 + (r() % (Math.trunc((w - 20) / 7) - 20));
      for (let c = 0; c < lineLen; c++) {
        const v = r();
        if ((v & 7) === 0) continue;
        const g = glyphs[(v >>> 3) & 63];
        for (let gy = 0; gy < 9; gy++) {
          for (let gx = 0; gx < 5; gx++) {
            if ((g[gy] >>> gx) & 1) put(x + 10 + 7 * c + 1 + gx, ly + 2 + gy, 0x000000);
          }
        }
      }
    }
  }
}

function photo(out: Uint8Array, width: number, height: number): void {
  const r = xorshift32(0x00c0ffee);
  const octave = (cell: number, amp: number) => {
    const gw = Math.floor(width / cell) + 2;
    const gh = Math.floor(height / cell) + 2;
    const grid = new Uint16Array(gw * gh * 3);
    for (let i = 0; i < grid.length; i++) grid[i] = r() % (amp + 1);
    return { cell, gw, grid };
  };
  const octaves = [octave(240, 200), octave(48, 55)];
  const value = new Int32Array(3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      value[0] = value[1] = value[2] = 0;
      for (const { cell, gw, grid } of octaves) {
        const gx = Math.floor(x / cell), fx = x % cell;
        const gy = Math.floor(y / cell), fy = y % cell;
        const w00 = (cell - fx) * (cell - fy), w10 = fx * (cell - fy), w01 = (cell - fx) * fy, w11 = fx * fy;
        const i00 = (gy * gw + gx) * 3, i01 = i00 + gw * 3;
        const area = cell * cell;
        for (let ch = 0; ch < 3; ch++) {
          const sum = grid[i00 + ch] * w00 + grid[i00 + 3 + ch] * w10 + grid[i01 + ch] * w01 + grid[i01 + 3 + ch] * w11;
          value[ch] += Math.floor(sum / area);
        }
      }
      const o = (y * width + x) * 4;
      for (let ch = 0; ch < 3; ch++) {
        let v = value[ch] + ((r() % 13) - 6);
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        out[o + 2 - ch] = v; // channel 0 is R, stored at byte 2
      }
      out[o + 3] = 0;
    }
  }
}

function noise(out: Uint8Array, width: number, height: number): void {
  const r = xorshift32(0xdeadbeef);
  for (let i = 0; i < width * height; i++) {
    out[i * 4] = r() & 255;
    out[i * 4 + 1] = r() & 255;
    out[i * 4 + 2] = r() & 255;
    out[i * 4 + 3] = 0;
  }
}
