// The display domain: one per agent, made at the composition root. It owns every VM's display hub (the
// only consumer of that VM's fetch-and-clear dirty log), the viewers' streams, screenshots and input, and
// the encode pool that does the pixel work off the event loop. gRPC's DisplayService, the SPICE server and
// the web console are adapters over it: they never see a display source, so no second consumer of a
// dirty log can exist.
import { QumraError } from "../errors.js";
import type { Logger } from "../logger.js";
import { DisplayHub } from "./display-hub.js";
import { DisplayTotals } from "./display-totals.js";
import type { EncodePool } from "./encode-pool.js";
import { deliverInput, planInput, type InputEventData } from "./input.js";
import type { ScreenshotFormat } from "./screenshot.js";
import type { DisplayEndpoint } from "./types.js";
import type { UpdateSink, Viewer, ViewerOptions } from "./viewer.js";

/**
 * Resolves a VM to its display; `action` words the refusal ("show the display of"). Throws the agent's
 * typed errors: NOT_FOUND, FAILED_PRECONDITION (the VM's state), UNAVAILABLE.
 */
export type DisplayResolver = (vmId: string, action: string) => DisplayEndpoint;

/** Pointer positions are clamped to this when the screen size is not needed (no pointer events). */
const ANY_SCREEN = { width: 65536, height: 65536 };

export class DisplayDomain {
  private readonly hubs = new Map<string, Promise<DisplayHub>>();
  /** Per VM, what its display sent over every hub it had; dropped when the VM is deleted (forget). */
  private readonly totals = new Map<string, DisplayTotals>();

  constructor(
    private readonly resolve: DisplayResolver,
    private readonly pool: EncodePool,
    private readonly log?: Logger,
    /** Viewers per VM over every adapter (--max-viewers-per-vm). */
    private readonly maxViewersPerVm = Infinity,
  ) {}

  /**
   * Streams the VM's display to `sink`: a keyframe, then the changes, at the viewer's pace, until `signal`
   * aborts or the display ends. Resolves when the stream is over; rejects with the agent's typed errors.
   */
  async watch(vmId: string, options: ViewerOptions, sink: UpdateSink, signal?: AbortSignal): Promise<void> {
    const { hub, viewer } = await this.attach(vmId, options);
    const stop = (): void => viewer.stop();
    signal?.addEventListener("abort", stop);
    if (signal?.aborted) viewer.stop();
    try {
      await viewer.run(sink);
    } finally {
      signal?.removeEventListener("abort", stop);
      hub.detach(viewer);
      if (hub.viewers.size === 0) hub.end("no viewers left");
    }
  }

  /** The whole screen now, encoded in a worker. */
  async screenshot(vmId: string, format: ScreenshotFormat): Promise<{ width: number; height: number; data: Uint8Array }> {
    const endpoint = this.resolve(vmId, "take a screenshot of");
    const reply = await this.pool.request({ op: "screenshot", info: await endpoint.info(), format });
    if (reply.op !== "screenshot") throw new Error(`screenshot: unexpected reply ${reply.op}`);
    return reply;
  }

  /** Delivers keyboard, pointer and motion events in order (validated before the VM is looked up). */
  async sendInput(vmId: string, events: InputEventData[]): Promise<void> {
    planInput(events, ANY_SCREEN);
    const endpoint = this.resolve(vmId, "send input to");
    const screen = events.some((e) => e.kind === "pointer") ? await endpoint.info() : ANY_SCREEN;
    await deliverInput(endpoint, planInput(events, screen));
  }

  /** The VM's hub while it has viewers (tests and benchmarks read its counters and viewers). */
  hubOf(vmId: string): Promise<DisplayHub> | undefined {
    return this.hubs.get(vmId);
  }

  /** What the VM's display has sent and its viewers now; undefined if it never had a viewer. */
  totalsOf(vmId: string): DisplayTotals | undefined {
    return this.totals.get(vmId);
  }

  /** Forgets a deleted VM's totals, so its metrics series go with it (a viewer still open keeps counting into its hub's). */
  forget(vmId: string): void {
    this.totals.delete(vmId);
  }

  /** Ends every stream and stops the encode workers (agent shutdown). */
  async close(): Promise<void> {
    const hubs = await Promise.allSettled(this.hubs.values());
    for (const h of hubs) if (h.status === "fulfilled") h.value.end("the agent is shutting down");
    await this.pool.close();
  }

  private async attach(vmId: string, options: ViewerOptions): Promise<{ hub: DisplayHub; viewer: Viewer }> {
    // Resolving checks the VM every time (NOT_FOUND, FAILED_PRECONDITION), even with a hub open.
    const endpoint = this.resolve(vmId, "show the display of");
    let pending = this.hubs.get(vmId);
    if (!pending) {
      let totals = this.totals.get(vmId);
      if (!totals) this.totals.set(vmId, (totals = new DisplayTotals()));
      pending = DisplayHub.open(vmId, endpoint, this.pool.lane(), totals);
      this.hubs.set(vmId, pending);
      const mine = pending;
      const forget = (): void => {
        if (this.hubs.get(vmId) === mine) this.hubs.delete(vmId);
      };
      pending.then((hub) => {
        this.log?.debug({ vm_id: vmId, width: hub.info.width, height: hub.info.height }, "display hub opened");
        hub.onEnd((reason) => {
          forget();
          this.log?.debug({ vm_id: vmId, reason }, "display hub closed");
        });
      }, forget);
    }
    const hub = await pending;
    if (hub.ended !== undefined) return this.attach(vmId, options);
    if (hub.viewers.size >= this.maxViewersPerVm) {
      throw new QumraError(
        "resource-exhausted",
        `VM '${vmId}' already has ${hub.viewers.size} display viewers (gRPC, SPICE and WebSocket together), the most --max-viewers-per-vm allows; close one, or start the agent with a higher --max-viewers-per-vm`,
      );
    }
    return { hub, viewer: hub.attach(options) };
  }
}
