// Images as R,G,B bytes, the form the SPICE interop tests compare: a client's PPM (spicy-screenshot), a
// canvas (spice-html5) and the agent's raw BGRX screenshot are all turned into it.
import { readFileSync } from "node:fs";

/** An image as R,G,B bytes per pixel, rows top-down: what the tests compare (spice-html5's alpha is not reliable). */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

export function rgbOfRgba(width: number, height: number, rgba: Uint8Array): RgbImage {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return { width, height, rgb };
}

/** The agent's framebuffer layout: B,G,R,pad. */
export function rgbOfBgrx(width: number, height: number, bgrx: Uint8Array): RgbImage {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    rgb[j] = bgrx[i + 2];
    rgb[j + 1] = bgrx[i + 1];
    rgb[j + 2] = bgrx[i];
  }
  return { width, height, rgb };
}

/** A binary PPM (P6, maxval 255), as spicy-screenshot writes. */
export function rgbOfPpm(ppm: Buffer): RgbImage {
  const header = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(ppm.subarray(0, 64).toString("latin1"));
  if (!header) throw new Error(`not a P6 PPM with maxval 255: ${JSON.stringify(ppm.subarray(0, 16).toString("latin1"))}`);
  const [width, height] = [Number(header[1]), Number(header[2])];
  const rgb = new Uint8Array(ppm.subarray(header[0].length, header[0].length + width * height * 3));
  if (rgb.length !== width * height * 3) throw new Error(`PPM ${width}x${height}: ${rgb.length} bytes of pixels, expected ${width * height * 3}`);
  return { width, height, rgb };
}

export function readPpm(file: string): RgbImage {
  return rgbOfPpm(readFileSync(file));
}

/** Where two images first differ (size, or pixel and both values), or undefined when they are equal. */
export function firstRgbDifference(actual: RgbImage, expected: RgbImage): string | undefined {
  if (actual.width !== expected.width || actual.height !== expected.height) return `size ${actual.width}x${actual.height}, expected ${expected.width}x${expected.height}`;
  let differing = 0;
  let first = -1;
  for (let i = 0; i < actual.rgb.length; i += 3) {
    if (actual.rgb[i] !== expected.rgb[i] || actual.rgb[i + 1] !== expected.rgb[i + 1] || actual.rgb[i + 2] !== expected.rgb[i + 2]) {
      if (first < 0) first = i;
      differing++;
    }
  }
  if (first < 0) return undefined;
  const p = first / 3;
  const at = (img: RgbImage) => `rgb(${img.rgb[first]},${img.rgb[first + 1]},${img.rgb[first + 2]})`;
  return `${differing} pixels differ; first at (${p % actual.width},${Math.floor(p / actual.width)}): ${at(actual)}, expected ${at(expected)}`;
}
