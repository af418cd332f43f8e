// The display work of one encode worker (or of the main thread when the pool has no workers): each
// viewer's encoder state (its WASM instance, frame, shadow and GLZ window) and the framebuffer files they
// read. Requests and replies are plain structured-clone data; encoded bytes are transferred, not copied.
import { threadId } from "node:worker_threads";
import { FramebufferFile } from "./framebuffer-file.js";
import { encodeScreenshot, readScreen, type ScreenshotFormat } from "./screenshot.js";
import { ViewerEncoder, type EncodedRect } from "./viewer-encoder.js";
import type { CodecPolicy, FramebufferInfo } from "./types.js";

export type EncodeRequest =
  /** Makes a viewer's encoder for this geometry (again, after a resolution change). */
  | { op: "open"; viewer: number; info: FramebufferInfo; policy: CodecPolicy }
  /** The whole screen, read now. */
  | { op: "keyframe"; viewer: number }
  /** The rects that changed in these pages since the viewer's last keyframe or update. */
  | { op: "update"; viewer: number; pages: Uint8Array }
  | { op: "close"; viewer: number }
  | { op: "screenshot"; info: FramebufferInfo; format: ScreenshotFormat };

/** What one keyframe or update cost and produced. */
export interface EncodeWork {
  /** Reading, diffing and encoding (ms). */
  busyMs: number;
  bytesRead: number;
  /** Pixels of the rects encoded. */
  pixels: number;
  /** The thread that did it (0: the agent's main thread). */
  thread: number;
}

export type EncodeReply =
  | { op: "rects"; rects: EncodedRect[]; work: EncodeWork }
  | { op: "screenshot"; width: number; height: number; data: Uint8Array }
  | { op: "done" };

interface OpenFile {
  file: FramebufferFile;
  users: number;
}

export class EncoderHost {
  private readonly viewers = new Map<number, { encoder: ViewerEncoder; file: string }>();
  /** Open framebuffer files by path and geometry (viewers of one VM share one; a resized one is another). */
  private readonly files = new Map<string, OpenFile>();

  /** Handles one request; `transfer` lists the buffers the reply hands over. */
  handle(req: EncodeRequest): { reply: EncodeReply; transfer: ArrayBuffer[] } {
    switch (req.op) {
      case "open": {
        const previous = this.viewers.get(req.viewer)?.encoder;
        this.close(req.viewer);
        const encoder = new ViewerEncoder(req.info, req.policy, previous);
        this.viewers.set(req.viewer, { encoder, file: this.acquire(req.info) });
        return { reply: { op: "done" }, transfer: [] };
      }
      case "keyframe":
        return this.rects(req.viewer, (encoder, file) => encoder.keyframe(file));
      case "update":
        return this.rects(req.viewer, (encoder, file) => encoder.update(file, req.pages));
      case "close":
        this.close(req.viewer);
        return { reply: { op: "done" }, transfer: [] };
      case "screenshot": {
        const data = new Uint8Array(encodeScreenshot(req.info.width, req.info.height, readScreen(req.info), req.format));
        return { reply: { op: "screenshot", width: req.info.width, height: req.info.height, data }, transfer: [data.buffer as ArrayBuffer] };
      }
    }
  }

  /** Viewers with an encoder here (tests). */
  get size(): number {
    return this.viewers.size;
  }

  private rects(viewer: number, run: (encoder: ViewerEncoder, file: FramebufferFile) => EncodedRect[]): { reply: EncodeReply; transfer: ArrayBuffer[] } {
    const v = this.viewers.get(viewer);
    if (!v) throw new Error(`viewer ${viewer} has no encoder (open it first)`);
    const c = v.encoder.counters;
    const before = { busyMs: c.busyMs, bytesRead: c.bytesRead, pixels: c.pixels };
    const rects = run(v.encoder, this.files.get(v.file)!.file);
    const work = { busyMs: c.busyMs - before.busyMs, bytesRead: c.bytesRead - before.bytesRead, pixels: c.pixels - before.pixels, thread: threadId };
    return { reply: { op: "rects", rects, work }, transfer: rects.map((r) => r.data.buffer as ArrayBuffer) };
  }

  private acquire(info: FramebufferInfo): string {
    const key = `${info.width}x${info.height}/${info.stride}:${info.path}`;
    const open = this.files.get(key);
    if (open) open.users++;
    else this.files.set(key, { file: new FramebufferFile(info), users: 1 });
    return key;
  }

  private close(viewer: number): void {
    const v = this.viewers.get(viewer);
    if (!v) return;
    this.viewers.delete(viewer);
    const open = this.files.get(v.file)!;
    if (--open.users === 0) {
      open.file.close();
      this.files.delete(v.file);
    }
  }
}
