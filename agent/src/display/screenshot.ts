// Whole-screen images: PNG (codec/png.ts), binary PPM (P6, RGB) or raw BGRX rows.
import { encodePng } from "../codec/png.js";
import { FramebufferFile } from "./framebuffer-file.js";
import type { FramebufferInfo } from "./types.js";

export type ScreenshotFormat = "png" | "ppm" | "raw";

/** Packed BGRX rows of the whole screen, read from the framebuffer file now. */
export function readScreen(info: FramebufferInfo): Uint8Array {
  const fb = new FramebufferFile(info);
  try {
    const frame = new Uint8Array(fb.frameBytes);
    fb.readFrame(frame);
    if (info.stride === info.width * 4) return frame;
    const rowBytes = info.width * 4;
    const packed = new Uint8Array(rowBytes * info.height);
    for (let y = 0; y < info.height; y++) packed.set(frame.subarray(y * info.stride, y * info.stride + rowBytes), y * rowBytes);
    return packed;
  } finally {
    fb.close();
  }
}

export function encodeScreenshot(width: number, height: number, bgrx: Uint8Array, format: ScreenshotFormat): Buffer {
  switch (format) {
    case "raw":
      return Buffer.from(bgrx.buffer, bgrx.byteOffset, width * height * 4);
    case "png":
      return Buffer.from(encodePng(width, height, bgrx, { level: 1 }));
    case "ppm":
      return bgrxToPpm(width, height, bgrx);
  }
}

export function bgrxToPpm(width: number, height: number, bgrx: Uint8Array): Buffer {
  const header = Buffer.from(`P6\n${width} ${height}\n255\n`, "ascii");
  const out = Buffer.allocUnsafe(header.length + width * height * 3);
  header.copy(out, 0);
  let o = header.length;
  for (let i = 0; i < width * height * 4; i += 4) {
    out[o++] = bgrx[i + 2];
    out[o++] = bgrx[i + 1];
    out[o++] = bgrx[i];
  }
  return out;
}
