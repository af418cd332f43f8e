// A VM's helper as a display source: DISPLAY_INFO, the framebuffer's dirty log, and input devices.
// Written against the helper contract (native/PROTOCOL.md); a helper without the framebuffer device
// answers FAILED_PRECONDITION rather than a crash.
import { QumraError, failedPrecondition } from "../errors.js";
import type { HelperClient } from "../vm/helper-client.js";
import type { DisplaySource, FramebufferInfo } from "./types.js";

/** The part of the helper client the display uses. */
export interface DisplayHelper {
  displayInfo(): Promise<{ width: number; height: number; stride: number; format?: string; path: string }>;
  dirty(): Promise<unknown>;
  pointer(x: number, y: number, buttons: number): Promise<unknown>;
  keyboard(scancodes: Uint8Array): Promise<number>;
  readonly closed: boolean;
  once(event: "close", listener: (err: Error) => void): unknown;
}

export function displayHelper(client: HelperClient, vmId: string): DisplayHelper {
  const c = client as unknown as Partial<DisplayHelper>;
  if (typeof c.displayInfo !== "function" || typeof c.dirty !== "function") {
    throw failedPrecondition(`VM '${vmId}' has no display: its helper has no framebuffer device`);
  }
  return client as unknown as DisplayHelper;
}

/** The dirty log as a page bitmap, whichever shape the helper client returns it in. */
export function bitmapOf(reply: unknown): Uint8Array {
  if (reply instanceof Uint8Array) return reply;
  if (reply && typeof reply === "object") {
    const r = reply as { bitmap?: unknown; pages?: unknown };
    if (r.bitmap instanceof Uint8Array) return r.bitmap;
    if (r.pages instanceof Uint8Array) return r.pages;
  }
  throw new QumraError("internal", "the helper's dirty log is not a page bitmap");
}

export function toFramebufferInfo(d: { width: number; height: number; stride: number; format?: string; path: string }, vmId: string): FramebufferInfo {
  if (d.format !== undefined && d.format.toLowerCase() !== "bgrx") throw new QumraError("internal", `VM '${vmId}': framebuffer format '${d.format}' is not bgrx`);
  if (!(d.width > 0 && d.height > 0 && d.stride >= d.width * 4)) throw new QumraError("internal", `VM '${vmId}': framebuffer ${d.width}x${d.height} stride ${d.stride} is not valid`);
  return { width: d.width, height: d.height, stride: d.stride, path: d.path };
}

export class HelperDisplaySource implements DisplaySource {
  private readonly helper: DisplayHelper;

  constructor(client: HelperClient, private readonly vmId: string) {
    this.helper = displayHelper(client, vmId);
  }

  async info(): Promise<FramebufferInfo> {
    return toFramebufferInfo(await this.helper.displayInfo(), this.vmId);
  }

  async dirty(): Promise<Uint8Array> {
    return bitmapOf(await this.helper.dirty());
  }

  onEnd(listener: (reason: string) => void): void {
    if (this.helper.closed) {
      setImmediate(() => listener("the VM stopped"));
      return;
    }
    this.helper.once("close", () => listener("the VM stopped"));
  }
}
