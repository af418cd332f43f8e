// One hub per displayed VM: the only caller of its source's fetch-and-clear dirty log. A poll runs when a
// viewer asks for one (polls close together are coalesced), and its dirty pages are ORed into every
// viewer's pending region, so viewers at different paces each see every change exactly once. The hub
// also notices a new geometry (the dirty log's page count changes) and starts a new surface.
import { isEmpty } from "./dirty-rects.js";
import { Viewer, type ViewerOptions } from "./viewer.js";
import type { EncodeLane } from "./encode-pool.js";
import { DisplayTotals } from "./display-totals.js";
import { pagesOf, type DisplaySource, type FramebufferInfo } from "./types.js";

/** Polls closer together than this share one fetch of the dirty log (120 fps is 8.3 ms). */
const MIN_POLL_INTERVAL_MS = 4;

export interface HubCounters {
  polls: number;
  /** Polls that found dirty pages. */
  dirtyPolls: number;
  /** Requests answered by a poll in flight or just done. */
  coalesced: number;
  /** Geometry changes seen. */
  surfaces: number;
}

export class DisplayHub {
  readonly viewers = new Set<Viewer>();
  readonly counters: HubCounters = { polls: 0, dirtyPolls: 0, coalesced: 0, surfaces: 1 };
  /** Why the display ended (set once). */
  ended: string | undefined;
  private polling: Promise<void> | undefined;
  private lastPoll = -Infinity;
  private readonly endListeners = new Set<(reason: string) => void>();

  private constructor(
    readonly vmId: string,
    private readonly source: DisplaySource,
    /** The current surface's geometry. */
    public info: FramebufferInfo,
    /** The encode worker lane that all of this VM's viewers use. */
    readonly lane: EncodeLane,
    /** What this VM's display has sent, kept across hubs (the domain's, for metrics). */
    readonly totals: DisplayTotals,
  ) {
    void source.ended.then((reason) => this.end(reason));
  }

  static async open(vmId: string, source: DisplaySource, lane: EncodeLane, totals = new DisplayTotals()): Promise<DisplayHub> {
    try {
      return new DisplayHub(vmId, source, await source.info(), lane, totals);
    } catch (err) {
      lane.release();
      throw err;
    }
  }

  /** Generation of the surface: grows by one at each geometry change. */
  get surface(): number {
    return this.counters.surfaces;
  }

  /** A new viewer whose pending region every later poll reaches. */
  attach(options: ViewerOptions): Viewer {
    const viewer = new Viewer(this, options);
    this.viewers.add(viewer);
    this.totals.viewers++;
    return viewer;
  }

  detach(viewer: Viewer): void {
    viewer.stop();
    if (this.viewers.delete(viewer)) this.totals.viewers--;
  }

  onEnd(listener: (reason: string) => void): () => void {
    if (this.ended !== undefined) {
      listener(this.ended);
      return () => undefined;
    }
    this.endListeners.add(listener);
    return () => this.endListeners.delete(listener);
  }

  /** Fetches the dirty log once for every viewer (or joins the fetch in flight / just done). */
  poll(): Promise<void> {
    if (this.ended !== undefined) return Promise.resolve();
    if (this.polling) {
      this.counters.coalesced++;
      return this.polling;
    }
    if (performance.now() - this.lastPoll < MIN_POLL_INTERVAL_MS) {
      this.counters.coalesced++;
      return Promise.resolve();
    }
    this.polling = this.fetch().finally(() => {
      this.polling = undefined;
      this.lastPoll = performance.now();
    });
    return this.polling;
  }

  /** Ends every viewer's stream (the VM stopped, or no viewer is left) and gives the lane back. */
  end(reason: string): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    for (const v of this.viewers) v.wakeAll();
    for (const l of this.endListeners) l(reason);
    this.endListeners.clear();
    this.lane.release();
  }

  private async fetch(): Promise<void> {
    this.counters.polls++;
    let log;
    try {
      log = await this.source.dirty();
    } catch (err) {
      // A source that went away ends the display; other errors end only this poll's callers' wait.
      if (this.ended !== undefined) return;
      throw err;
    }
    if (this.ended !== undefined) return;
    if (log.pages !== pagesOf(this.info)) {
      // A new geometry: each viewer starts a new surface with a keyframe at its next step, so this
      // log's pages do not matter.
      this.info = await this.source.info();
      this.counters.surfaces++;
      return;
    }
    if (isEmpty(log.bitmap)) return;
    this.counters.dirtyPolls++;
    for (const v of this.viewers) v.noteDirty(log.bitmap);
  }
}
