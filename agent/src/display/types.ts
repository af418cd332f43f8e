// The display domain: framebuffer geometry, where dirty pages come from, rectangles and updates.
// No gRPC types here (api/display-service.ts converts).

/** Size of one dirty-log page: KVM logs guest writes per 4 KiB page. */
export const PAGE_SIZE = 4096;

export interface FramebufferInfo {
  width: number;
  height: number;
  /** Bytes per row (width × 4 for BGRX). */
  stride: number;
  /** The file the helper maps as the guest's framebuffer. */
  path: string;
}

/**
 * Where a display's pixels and change log come from: a VM's helper, or a scripted file in tests and
 * benchmarks. `dirty` is fetch-and-clear, so exactly one consumer (the VM's DisplayHub) calls it.
 */
export interface DisplaySource {
  info(): Promise<FramebufferInfo>;
  /** Pages of the framebuffer file written since the previous call: bit i (LSB first in byte i>>3) = page i. */
  dirty(): Promise<Uint8Array>;
  /** Called once when the display goes away (the VM stopped, its helper exited). */
  onEnd(listener: (reason: string) => void): void;
}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Codecs as the pipeline names them; "auto" picks per rectangle like spice-server. */
export type CodecChoice = "auto" | "raw" | "quic" | "lz" | "glz";
export type RectCodec = Exclude<CodecChoice, "auto">;

export interface EncodedRectData extends Rect {
  codec: RectCodec;
  /** Always rgb32 (B, G, R, pad) for this framebuffer. */
  imageType: "rgb32";
  data: Buffer;
  /** GLZ: the image id in the stream's dictionary (0 otherwise). */
  glzImageId: number;
}

export interface DisplayUpdateData {
  sequence: number;
  time: Date;
  keyframe: boolean;
  width: number;
  height: number;
  rects: EncodedRectData[];
  /** Polls with changes folded into this update beyond the first (0: the viewer kept up). */
  merged: number;
}
