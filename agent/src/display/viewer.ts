// One viewer of a display: its own pace (max_fps, and never more than one update in flight), its own
// encoder state, and a pending region that every poll of the VM's hub ORs into. A viewer that reads
// slowly gets one merged update covering everything since its previous one; nothing queues.
import { ViewerEncoder } from "./viewer-encoder.js";
import { isEmpty, orInto } from "./dirty-rects.js";
import type { DisplayHub } from "./display-hub.js";
import type { CodecChoice, DisplayUpdateData } from "./types.js";

export interface ViewerOptions {
  codec: CodecChoice;
  /** 1..120 updates per second at most. */
  maxFps: number;
  glzWindowPixels: number;
}

/** Where a viewer's updates go (the gRPC stream, in the service). */
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
}

export class Viewer {
  readonly encoder: ViewerEncoder;
  readonly counters: ViewerCounters = { updates: 0, pollsSeen: 0, pollsMerged: 0, emptyUpdates: 0, inFlight: 0, maxInFlight: 0, encodedBytes: 0 };
  /** Dirty pages not yet sent to this viewer; fixed size (one bit per page of the framebuffer). */
  private readonly pending: Uint8Array;
  private pendingPolls = 0;
  private sequence = 0;
  private stopped = false;
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly hub: DisplayHub,
    readonly options: ViewerOptions,
  ) {
    const info = hub.info;
    this.pending = new Uint8Array(Math.ceil(Math.ceil((info.stride * info.height) / 4096) / 8));
    this.encoder = new ViewerEncoder(info, options.codec, options.glzWindowPixels);
  }

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

  /** Sends the keyframe, then updates at the viewer's pace until stopped or the display ends. */
  async run(sink: UpdateSink): Promise<void> {
    const interval = 1000 / this.options.maxFps;
    const { width, height } = this.hub.info;
    // Any poll from now on reaches this viewer (the hub attached it), so reading the whole frame now misses nothing.
    await this.send(sink, { sequence: ++this.sequence, time: new Date(), keyframe: true, width, height, rects: this.encoder.keyframe(this.hub.fb), merged: 0 });
    let last = performance.now();
    while (!this.done) {
      await this.sleep(last + interval - performance.now());
      if (this.done) break;
      last = performance.now();
      await this.hub.poll();
      if (this.done || isEmpty(this.pending)) continue;
      const polls = this.pendingPolls;
      const rects = this.encoder.update(this.hub.fb, this.pending);
      this.pending.fill(0);
      this.pendingPolls = 0;
      if (rects.length === 0) {
        this.counters.emptyUpdates++;
        continue;
      }
      const merged = Math.max(0, polls - 1);
      this.counters.pollsMerged += merged;
      await this.send(sink, { sequence: ++this.sequence, time: new Date(), keyframe: false, width, height, rects, merged });
    }
  }

  private get done(): boolean {
    return this.stopped || this.hub.ended !== undefined;
  }

  private async send(sink: UpdateSink, update: DisplayUpdateData): Promise<void> {
    this.counters.updates++;
    for (const r of update.rects) this.counters.encodedBytes += r.data.length;
    this.counters.inFlight++;
    this.counters.maxInFlight = Math.max(this.counters.maxInFlight, this.counters.inFlight);
    let waker: (() => void) | undefined;
    try {
      await Promise.race([sink.send(update), new Promise<void>((resolve) => this.wakers.add((waker = resolve)))]);
    } finally {
      if (waker) this.wakers.delete(waker);
      this.counters.inFlight--;
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

  /** Wakes a sleeping or sending run() so it sees that it must stop. */
  wakeAll(): void {
    for (const w of [...this.wakers]) w();
    this.wakers.clear();
  }
}
