// A display without a VM: a framebuffer file that the caller draws into, keeping its own dirty page log
// the way KVM's dirty logging would, and recording the input it is sent. Used by the pipeline tests and
// the display benchmarks.
import { closeSync, ftruncateSync, openSync, rmSync, writeSync } from "node:fs";
import { PAGE_SIZE, emptyPageBitmap, pagesOf, type DirtyLog, type DisplayEndpoint, type FramebufferInfo, type Rect } from "./types.js";

export class ScriptedFramebuffer implements DisplayEndpoint {
  geometry: FramebufferInfo;
  readonly ended: Promise<string>;
  private readonly fd: number;
  private bitmap: Uint8Array;
  private markEnded!: (reason: string) => void;
  private closed = false;
  /** Calls of dirty() (each one is a fetch-and-clear of the log). */
  dirtyCalls = 0;
  /** Input received: scancode bytes, pointer events and relative motions, each in order. */
  readonly keys: number[] = [];
  readonly pointers: { x: number; y: number; buttons: number }[] = [];
  readonly motions: { dx: number; dy: number; wheel: number; buttons: number }[] = [];

  constructor(path: string, width: number, height: number) {
    this.geometry = { width, height, stride: width * 4, path };
    this.fd = openSync(path, "w+");
    ftruncateSync(this.fd, this.geometry.stride * height);
    this.bitmap = this.emptyBitmap();
    this.ended = new Promise((resolve) => (this.markEnded = resolve));
  }

  async info(): Promise<FramebufferInfo> {
    return this.geometry;
  }

  async dirty(): Promise<DirtyLog> {
    this.dirtyCalls++;
    const bitmap = this.bitmap;
    this.bitmap = this.emptyBitmap();
    return { pages: pagesOf(this.geometry), bitmap };
  }

  async pointer(x: number, y: number, buttons: number): Promise<void> {
    this.pointers.push({ x, y, buttons });
  }

  async keyboard(scancodes: Uint8Array): Promise<number> {
    this.keys.push(...scancodes);
    return scancodes.length;
  }

  /** A mouse that always reports and never runs out of room: one packet per motion. */
  async motion(dx: number, dy: number, wheel: number, buttons: number): Promise<{ packets: number; reporting: boolean }> {
    this.motions.push({ dx, dy, wheel, buttons });
    return { packets: 1, reporting: true };
  }

  /** A new geometry (a guest switching resolution): the file is resized and its content is black. */
  resize(width: number, height: number): void {
    this.geometry = { ...this.geometry, width, height, stride: width * 4 };
    ftruncateSync(this.fd, 0);
    ftruncateSync(this.fd, this.geometry.stride * height);
    this.bitmap = this.emptyBitmap();
  }

  /** Writes `pixels` (packed BGRX rows of r.width) into the rect r and logs the pages written. */
  draw(r: Rect, pixels: Uint8Array): void {
    const { stride } = this.geometry;
    const rowBytes = r.width * 4;
    if (r.x === 0 && r.width * 4 === stride) {
      this.writeAt(pixels.subarray(0, rowBytes * r.height), r.y * stride);
      return;
    }
    for (let y = 0; y < r.height; y++) this.writeAt(pixels.subarray(y * rowBytes, (y + 1) * rowBytes), (r.y + y) * stride + r.x * 4);
  }

  /** Fills a rect with one colour (0xRRGGBB). */
  fill(r: Rect, rgb: number): void {
    const px = new Uint8Array(r.width * r.height * 4);
    for (let i = 0; i < px.length; i += 4) {
      px[i] = rgb & 0xff;
      px[i + 1] = (rgb >> 8) & 0xff;
      px[i + 2] = (rgb >> 16) & 0xff;
    }
    this.draw(r, px);
  }

  /** Marks pages dirty without changing them (a guest rewriting the same pixels). */
  touch(byteOffset: number, length: number): void {
    this.mark(byteOffset, length);
  }

  /** Ends the display (as a VM stopping would). */
  end(reason = "the VM stopped"): void {
    this.markEnded(reason);
  }

  close(remove = true): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
    if (remove) rmSync(this.geometry.path, { force: true });
  }

  private writeAt(bytes: Uint8Array, position: number): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, position + done);
    this.mark(position, bytes.length);
  }

  private mark(offset: number, length: number): void {
    if (length <= 0) return;
    const first = Math.floor(offset / PAGE_SIZE);
    const last = Math.floor((offset + length - 1) / PAGE_SIZE);
    for (let p = first; p <= last; p++) this.bitmap[p >> 3] |= 1 << (p & 7);
  }

  private emptyBitmap(): Uint8Array {
    return emptyPageBitmap(this.geometry);
  }
}
