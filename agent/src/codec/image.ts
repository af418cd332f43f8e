// Image descriptions shared by every codec wrapper, the CLI and the display pipeline.

/** Pixel layouts, as in SPICE (the image types of spice-common's quic.h and lz_common.h). */
export const IMAGE_TYPES = ["rgb32", "rgba", "rgb24", "rgb16", "gray", "plt8"] as const;
export type ImageType = (typeof IMAGE_TYPES)[number];

/** Bytes per pixel of each layout. */
export const BYTES_PER_PIXEL: Record<ImageType, number> = {
  rgb32: 4,
  rgba: 4,
  rgb24: 3,
  rgb16: 2,
  gray: 1,
  plt8: 1,
};

export interface ImageDesc {
  type: ImageType;
  width: number;
  height: number;
  /** Bytes from the start of one row to the start of the next, ≥ width × bytes per pixel. */
  stride: number;
  /** Rows are given top row first (SPICE's top_down flag). Default true. */
  topDown?: boolean;
}

/** Thrown for images a codec cannot take or streams it cannot decode; the message says why. */
export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CodecError";
  }
}

/** Checks that a description is well formed and that `byteLength` bytes hold it; throws CodecError. */
export function checkImage(desc: ImageDesc, byteLength?: number): void {
  const { width, height, stride, type } = desc;
  if (!(IMAGE_TYPES as readonly string[]).includes(type)) {
    throw new CodecError(`unknown image type '${type}' (expected one of ${IMAGE_TYPES.join(", ")})`);
  }
  if (!Number.isInteger(width) || width < 1 || width > 65535) throw new CodecError(`width ${width} is not in 1..65535`);
  if (!Number.isInteger(height) || height < 1 || height > 65535) throw new CodecError(`height ${height} is not in 1..65535`);
  const rowBytes = width * BYTES_PER_PIXEL[type];
  if (!Number.isInteger(stride) || stride < rowBytes) {
    throw new CodecError(`stride ${stride} is smaller than a ${type} row of ${width} pixels (${rowBytes} bytes)`);
  }
  if (byteLength !== undefined) {
    const need = stride * (height - 1) + rowBytes;
    if (byteLength < need) {
      throw new CodecError(`${byteLength} bytes cannot hold a ${width}x${height} ${type} image with stride ${stride} (needs ${need})`);
    }
  }
}

/**
 * Where a decoder writes an image of 32-bit pixels in place: a rect of a larger picture (a screen)
 * in the codec instance's memory. It must not overlap the instance's input and output regions.
 */
export interface PixelTarget {
  /** Offset of the rect's top-left pixel in the instance's memory. */
  offset: number;
  /** Bytes from the start of one row of the picture to the next, ≥ width × 4. */
  stride: number;
  /** The size the image must have: a stream of another size is refused before anything is written. */
  width: number;
  height: number;
}

/**
 * Checks that `target` is well formed and lies in a memory of `memoryBytes` bytes, and that the image
 * a stream announces (`what`, `width` × `height`) is its size; returns the bytes it spans. Throws CodecError.
 */
export function checkTarget(target: PixelTarget, memoryBytes: number, what: string, width: number, height: number): number {
  const { offset, stride } = target;
  if (width !== target.width || height !== target.height) {
    throw new CodecError(`${what} is ${width}x${height}, not the ${target.width}x${target.height} it is to fill`);
  }
  if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(stride) || stride < width * 4) {
    throw new CodecError(`${what}: target at ${offset} with stride ${stride} cannot hold rows of ${width} pixels`);
  }
  const span = stride * (height - 1) + width * 4;
  if (offset + span > memoryBytes) throw new CodecError(`${what}: target at ${offset} (+${span} bytes) lies outside the codec's memory`);
  return span;
}
