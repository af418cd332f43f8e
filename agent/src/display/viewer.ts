// One viewer of a display: its own pace (max_fps, and never more than one update in flight), its own
// encoder state (in the hub's encode worker), and a pending region that every poll of the VM's hub ORs
// into. A viewer that reads slowly gets one merged update covering everything since its previous one;
// nothing queues. A new surface (the first, or a resolution change) is sent as a keyframe.
import { isEmpty, orInto } from "./dirty-rects.js";
import type { DisplayHub } from "./display-hub.js";
import type { EncodeReply, EncodeRequest } from "./encode-host.js";
import type { EncodedRect } from "./viewer-encoder.js";
import { emptyPageBitmap, RECT_CODECS, type CodecPolicy, type DisplayUpdateData, type EncodedRectData, type RectCodec } from "./types.js";

export interface ViewerOptions {
  policy: CodecPolicy;
  /** 1..120 updates per second at most. */
  maxFps: number;
}

/** Where a viewer's updates go (a gRPC stream, a SPICE display channel). */
export interface UpdateSink {
  /** Sends one update; resolves once the transport has taken it and can take another (write callback / 'drain'). */
  send(update: DisplayUpdateData): Promise<void>;
}

export interface ViewerCounters {
  updates: number;
  /** Polls with changes that reached this viewer. */
  pollsSeen: number;
  /** Polls folded into updates beyond the first of each (the sum of `merged`). */
  pollsMerged: number;
  /** Polls with changes whose pixels turned out identical (no update sent). */
  emptyUpdates: number;
  /** Updates handed to the sink and not yet taken (0 or 1 by construction). */
  inFlight: number;
  maxInFlight: number;
  encodedBytes: number;
  /** Time the encode worker spent reading, diffing and encoding for this viewer (ms). */
  encodeMs: number;
  /** Framebuffer bytes read and pixels encoded for this viewer. */
  bytesRead: number;
  pixels: number;
  /** Rects sent, per codec. */
  rects: Record<RectCodec, number>;
  /** The thread that encoded the last update (0: the agent's main thread). */
  thread: number;
}

let nextViewerId = 1;

export class Viewer {
  /** Unique in this agent process: names the viewer's encoder in its worker. */
  readonly id = nextViewerId++;
  readonly counters: ViewerCounters = {
    updates: 0, pollsSeen: 0, pollsMerged: 0, emptyUpdates: 0, inFlight: 0, maxInFlight: 0, encodedBytes: 0,
    encodeMs: 0, bytesRead: 0, pixels: 0, thread: 0, rects: Object.fromEntries(RECT_CODECS.map((c) => [c, 0])) as Record<RectCodec, number>,
  };
  /** Dirty pages not yet sent to this viewer; one bit per page of the current surface. */
  private pending = new Uint8Array(0);
  private pendingPolls = 0;
  private sequence = 0;
  private stopped = false;
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly hub: DisplayHub,
    readonly options: ViewerOptions,
  ) {}

  /** Called by the hub after each poll that found dirty pages. */
  noteDirty(bitmap: Uint8Array): void {
    if (orInto(this.pending, bitmap)) {
      this.pendingPolls++;
      this.counters.pollsSeen++;
    }
  }

  /** Ends run() at its next step (the stream was cancelled or the display ended). */
  stop(): void {
    this.stopped = true;
    this.wakeAll();
  }

  /** Sends a keyframe of the surface, then updates at the viewer's pace until stopped or the display ends. */
  async run(sink: UpdateSink): Promise<void> {
    const interval = 1000 / this.options.maxFps;
    let surface = 0;
    let last = performance.now();
    try {
      while (!this.done) {
        if (surface !== this.hub.surface) {
          surface = this.hub.surface;
          const info = this.hub.info;
          // From here on every poll reaches this bitmap, so reading the whole frame next misses nothing.
          this.pending = emptyPageBitmap(info);
          this.pendingPolls = 0;
          await this.encode({ op: "open", viewer: this.id, info, policy: this.options.policy });
          const rects = await this.encode({ op: "keyframe", viewer: this.id });
          if (this.done || surface !== this.hub.surface) continue;
          await this.send(sink, { surfaceChanged: true, keyframe: true, rects, merged: 0 }, info);
          continue;
        }
        await this.sleep(last + interval - performance.now());
        if (this.done) break;
        last = performance.now();
        await this.hub.poll();
        if (this.done || surface !== this.hub.surface || isEmpty(this.pending)) continue;
        const polls = this.pendingPolls;
        const pages = this.pending.slice();
        this.pending.fill(0);
        this.pendingPolls = 0;
        const rects = await this.encode({ op: "update", viewer: this.id, pages });
        if (this.done || surface !== this.hub.surface) continue;
        if (rects.length === 0) {
          this.counters.emptyUpdates++;
          continue;
        }
        const merged = Math.max(0, polls - 1);
        this.counters.pollsMerged += merged;
        await this.send(sink, { surfaceChanged: false, keyframe: false, rects, merged }, this.hub.info);
      }
    } finally {
      // The worker forgets this viewer's encoder; a failure here only means the worker is gone.
      this.hub.lane.request({ op: "close", viewer: this.id }).catch(() => undefined);
    }
  }

  /** Wakes a sleeping or sending run() so it sees that it must stop. */
  wakeAll(): void {
    for (const w of [...this.wakers]) w();
    this.wakers.clear();
  }

  private get done(): boolean {
    return this.stopped || this.hub.ended !== undefined;
  }

  private async encode(req: EncodeRequest): Promise<EncodedRectData[]> {
    const reply: EncodeReply = await this.hub.lane.request(req);
    if (reply.op !== "rects") return [];
    const c = this.counters;
    c.encodeMs += reply.work.busyMs;
    c.bytesRead += reply.work.bytesRead;
    c.pixels += reply.work.pixels;
    c.thread = reply.work.thread;
    return reply.rects.map(toRectData);
  }

  private async send(sink: UpdateSink, u: Pick<DisplayUpdateData, "surfaceChanged" | "keyframe" | "rects" | "merged">, size: { width: number; height: number }): Promise<void> {
    const update: DisplayUpdateData = { sequence: ++this.sequence, time: new Date(), width: size.width, height: size.height, ...u };
    const c = this.counters;
    c.updates++;
    for (const r of update.rects) {
      c.encodedBytes += r.data.length;
      c.rects[r.codec]++;
    }
    this.hub.totals.noteUpdate(update);
    c.inFlight++;
    c.maxInFlight = Math.max(c.maxInFlight, c.inFlight);
    let waker: (() => void) | undefined;
    try {
      await Promise.race([sink.send(update), new Promise<void>((resolve) => this.wakers.add((waker = resolve)))]);
    } finally {
      if (waker) this.wakers.delete(waker);
      c.inFlight--;
    }
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }
}

/** A worker's rect as the update model carries it (a Buffer over the transferred bytes, no copy). */
function toRectData(r: EncodedRect): EncodedRectData {
  return { ...r, imageType: "rgb32", data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength) };
}
