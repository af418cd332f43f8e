// The display domain: framebuffer geometry, where dirty pages come from, rectangles, codec policies and
// updates. No gRPC types here (the adapters in api/ and spice/ convert).

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

/** 4 KiB pages of a framebuffer. */
export function pagesOf(info: Pick<FramebufferInfo, "stride" | "height">): number {
  return Math.ceil((info.stride * info.height) / PAGE_SIZE);
}

/** An empty dirty-page bitmap for a framebuffer: one bit per page. */
export function emptyPageBitmap(info: Pick<FramebufferInfo, "stride" | "height">): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Math.ceil(pagesOf(info) / 8));
}

/** One fetch of a framebuffer's dirty log. */
export interface DirtyLog {
  /** Pages of the framebuffer as the source sees it now (a different count means a new geometry). */
  pages: number;
  /** Bit i (LSB first in byte i >> 3) = page i written since the previous fetch. */
  bitmap: Uint8Array;
}

/**
 * Where a display's pixels and change log come from: a VM's helper, or a scripted file in tests and
 * benchmarks. `dirty` is fetch-and-clear, so the display domain's hub for that VM is its only caller.
 */
export interface DisplaySource {
  info(): Promise<FramebufferInfo>;
  dirty(): Promise<DirtyLog>;
  /** Resolves once, with the reason, when the display goes away (the VM stopped, its helper exited). */
  readonly ended: Promise<string>;
}

/** The guest's input devices behind a display. */
export interface InputTarget {
  /** Absolute pointer position and buttons (bit 0 left, 1 right, 2 middle). */
  pointer(x: number, y: number, buttons: number): Promise<void>;
  /** Queues set-1 scancode bytes; resolves with how many were accepted. */
  keyboard(scancodes: Uint8Array): Promise<number>;
  /**
   * Relative mouse motion: dx, dy in screen coordinates (dy positive down), wheel positive towards the user,
   * buttons bit 0 left, 1 right, 2 middle. `packets` = 0 with `reporting` means no room now (try again);
   * without `reporting` the guest is not listening and the motion is dropped.
   */
  motion(dx: number, dy: number, wheel: number, buttons: number): Promise<{ packets: number; reporting: boolean }>;
}

/** A VM's display as the domain sees it: pixels, changes and input. */
export interface DisplayEndpoint extends DisplaySource, InputTarget {}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Codecs a rect can be sent with. */
export const RECT_CODECS = ["raw", "quic", "lz", "glz"] as const;
export type RectCodec = (typeof RECT_CODECS)[number];

/** spice-server's image_compression settings, with its names and meanings. */
export const IMAGE_COMPRESSIONS = ["auto_glz", "auto_lz", "quic", "glz", "lz", "off"] as const;
export type ImageCompression = (typeof IMAGE_COMPRESSIONS)[number];

/** What a viewer can decode. */
export interface DecoderCaps {
  /** Codecs it decodes (raw is always understood). */
  codecs: RectCodec[];
  /** Its GLZ dictionary window in pixels; 0 = it keeps none, so it is never sent GLZ. */
  glzWindowPixels: number;
}

/** How one viewer's rects are coded: the compression mode limited to what the viewer decodes. */
export interface CodecPolicy {
  compression: ImageCompression;
  decoder: DecoderCaps;
}

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
  /**
   * A new surface starts with this update: the first update of a stream, and every resolution change.
   * The viewer drops what it showed and makes a width × height screen; the rects are a keyframe of it.
   */
  surfaceChanged: boolean;
  /** The rects cover the whole screen. */
  keyframe: boolean;
  width: number;
  height: number;
  rects: EncodedRectData[];
  /** Polls with changes folded into this update beyond the first (0: the viewer kept up). */
  merged: number;
}
