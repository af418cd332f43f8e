// One hub per displayed VM: the only caller of the source's fetch-and-clear dirty log. A poll runs when
// a viewer asks for one (polls close together are coalesced), and its dirty pages are ORed into every
// viewer's pending region, so viewers at different paces each see every change exactly once.
import { FramebufferFile } from "./framebuffer-file.js";
import { isEmpty } from "./dirty-rects.js";
import { Viewer, type ViewerOptions } from "./viewer.js";
import type { DisplaySource, FramebufferInfo } from "./types.js";

/** Polls closer together than this share one fetch of the dirty log (120 fps is 8.3 ms). */
const MIN_POLL_INTERVAL_MS = 4;

export interface HubCounters {
  polls: number;
  /** Polls that found dirty pages. */
  dirtyPolls: number;
  /** Requests answered by a poll in flight or just done. */
  coalesced: number;
}

export class DisplayHub {
  readonly viewers = new Set<Viewer>();
  readonly counters: HubCounters = { polls: 0, dirtyPolls: 0, coalesced: 0 };
  /** Why the display ended (set once). */
  ended: string | undefined;
  private polling: Promise<void> | undefined;
  private lastPoll = -Infinity;
  private readonly endListeners = new Set<(reason: string) => void>();

  private constructor(
    readonly source: DisplaySource,
    readonly info: FramebufferInfo,
    readonly fb: FramebufferFile,
  ) {
    source.onEnd((reason) => this.end(reason));
  }

  static async open(source: DisplaySource): Promise<DisplayHub> {
    const info = await source.info();
    const hub = new DisplayHub(source, info, new FramebufferFile(info));
    return hub;
  }

  /** A new viewer whose pending region every later poll reaches. */
  attach(options: ViewerOptions): Viewer {
    const viewer = new Viewer(this, options);
    this.viewers.add(viewer);
    return viewer;
  }

  detach(viewer: Viewer): void {
    viewer.stop();
    this.viewers.delete(viewer);
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

  /** Ends every viewer's stream (the VM stopped) and closes the file. */
  end(reason: string): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    for (const v of this.viewers) v.wakeAll();
    for (const l of this.endListeners) l(reason);
    this.endListeners.clear();
    this.fb.close();
  }

  private async fetch(): Promise<void> {
    this.counters.polls++;
    let bitmap: Uint8Array;
    try {
      bitmap = await this.source.dirty();
    } catch (err) {
      // A source that went away ends the display; other errors end only this poll's callers' wait.
      if (this.ended !== undefined) return;
      throw err;
    }
    if (isEmpty(bitmap)) return;
    this.counters.dirtyPolls++;
    for (const v of this.viewers) v.noteDirty(bitmap);
  }
}

/**
 * The hubs of all displayed VMs: one per VM while it has viewers. `open` resolves a VM to its display
 * source (throwing the VM manager's typed errors).
 */
export class DisplayHubs {
  private readonly opening = new Map<string, Promise<DisplayHub>>();

  constructor(private readonly open: (vmId: string) => DisplaySource) {}

  /** Attaches a viewer to the VM's hub (opening it if needed); `release` detaches and ends an idle hub. */
  async attach(vmId: string, options: ViewerOptions): Promise<{ hub: DisplayHub; viewer: Viewer; release: () => void }> {
    // Resolving the source checks the VM every time (NOT_FOUND, FAILED_PRECONDITION), even with a hub open.
    const source = this.open(vmId);
    let pending = this.opening.get(vmId);
    if (!pending) {
      pending = DisplayHub.open(source);
      this.opening.set(vmId, pending);
      const mine = pending;
      pending.then(
        (hub) => hub.onEnd(() => {
          if (this.opening.get(vmId) === mine) this.opening.delete(vmId);
        }),
        () => {
          if (this.opening.get(vmId) === mine) this.opening.delete(vmId);
        },
      );
    }
    const hub = await pending;
    if (hub.ended !== undefined) {
      if (this.opening.get(vmId) === pending) this.opening.delete(vmId);
      return this.attach(vmId, options);
    }
    const viewer = hub.attach(options);
    return {
      hub,
      viewer,
      release: () => {
        hub.detach(viewer);
        if (hub.viewers.size === 0) hub.end("no viewers left");
      },
    };
  }

  /** The VM's hub if one is open (tests and benchmarks read its counters). */
  hubOf(vmId: string): Promise<DisplayHub> | undefined {
    return this.opening.get(vmId);
  }

  /** Hubs open or opening (tests). */
  get size(): number {
    return this.opening.size;
  }
}
