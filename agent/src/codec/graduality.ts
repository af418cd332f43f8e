// spice-server's graduality test over a 32-bit image in a codec instance's memory (wasm/assembly/graduality.ts).
import type { CodecInstance } from "./instance.js";
import type { CodecExports } from "./wasm-module.js";

interface GradualityExports extends CodecExports {
  gradualityScore(ptr: number, width: number, height: number, stride: number): number;
}

/** The score of the width × height B,G,R,X image at `offset` with `stride` bytes per row. */
export function gradualityScore(codec: CodecInstance, offset: number, width: number, height: number, stride: number): number {
  return (codec.exports as GradualityExports).gradualityScore(offset, width, height, stride);
}
