// The framebuffer file on tmpfs: positional reads of whole rows straight into a caller's buffer
// (normally a view of a codec's WASM memory), so pixels are copied once, by the kernel.
import { closeSync, openSync, readSync } from "node:fs";
import { QumraError } from "../errors.js";
import type { FramebufferInfo } from "./types.js";

export class FramebufferFile {
  private fd: number;

  constructor(readonly info: FramebufferInfo) {
    try {
      this.fd = openSync(info.path, "r");
    } catch (err) {
      throw new QumraError("unavailable", `cannot open the framebuffer ${info.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  get frameBytes(): number {
    return this.info.stride * this.info.height;
  }

  /**
   * Reads rows [y0, y1) into `dest` at the same offsets they have in the file relative to row 0
   * (dest holds a whole frame), so dest[y * stride] is the start of row y.
   */
  readRows(dest: Uint8Array, y0: number, y1: number): void {
    const { stride } = this.info;
    const start = y0 * stride;
    this.readAt(dest, start, (y1 - y0) * stride, start);
  }

  /** Reads the whole frame into dest (at least frameBytes long). */
  readFrame(dest: Uint8Array): void {
    this.readAt(dest, 0, this.frameBytes, 0);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private readAt(dest: Uint8Array, offset: number, length: number, position: number): void {
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, dest, offset + done, length - done, position + done);
      if (n === 0) {
        // A file shorter than the frame (being resized, or not yet extended): the rest reads as black.
        dest.fill(0, offset + done, offset + length);
        return;
      }
      done += n;
    }
  }
}
