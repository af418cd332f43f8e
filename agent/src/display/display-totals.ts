// What one VM's display has sent, over every viewer it ever had (gRPC, SPICE, WebSocket), for metrics:
// a viewer's own counters go away with it, these stay until the VM is deleted (DisplayDomain.forget).
import { RECT_CODECS, type DisplayUpdateData, type RectCodec } from "./types.js";

/** The window the frame rate is measured over (a dashboard's rate() over updates is the long view). */
const FPS_WINDOW_MS = 5000;
/** One bucket per second: the rate costs five numbers per VM, not a timestamp per update. */
const BUCKET_MS = 1000;
const BUCKETS = FPS_WINDOW_MS / BUCKET_MS;

export class DisplayTotals {
  updates = 0;
  /** Rects sent, per codec. */
  readonly rects = zeroPerCodec();
  /** Encoded bytes sent (the rects' data), per codec. */
  readonly bytes = zeroPerCodec();
  /** Viewers attached now. */
  viewers = 0;
  private readonly buckets = new Array<number>(BUCKETS).fill(0);
  /** The bucket index (time / BUCKET_MS) of buckets[last]. */
  private lastBucket = 0;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.lastBucket = Math.floor(this.now() / BUCKET_MS);
  }

  noteUpdate(update: Pick<DisplayUpdateData, "rects">): void {
    this.updates++;
    for (const r of update.rects) {
      this.rects[r.codec]++;
      this.bytes[r.codec] += r.data.length;
    }
    this.advance();
    this.buckets[this.lastBucket % BUCKETS]++;
  }

  /** Updates per second over the last five seconds, every viewer together. */
  fps(): number {
    this.advance();
    // The current bucket is partly filled: count the four full ones and the elapsed part of this one.
    const intoCurrent = (this.now() % BUCKET_MS) / BUCKET_MS;
    const seconds = (BUCKETS - 1) + intoCurrent;
    const sum = this.buckets.reduce((a, b) => a + b, 0);
    return seconds > 0 ? sum / seconds : 0;
  }

  /** Empties the buckets that the time since the last note skipped over. */
  private advance(): void {
    const bucket = Math.floor(this.now() / BUCKET_MS);
    for (let b = this.lastBucket + 1; b <= bucket && b <= this.lastBucket + BUCKETS; b++) this.buckets[b % BUCKETS] = 0;
    this.lastBucket = Math.max(this.lastBucket, bucket);
  }
}

function zeroPerCodec(): Record<RectCodec, number> {
  return Object.fromEntries(RECT_CODECS.map((c) => [c, 0])) as Record<RectCodec, number>;
}
