// A VM's helper as a display source: DISPLAY_INFO, the framebuffer's dirty log, and input devices.
// See native/PROTOCOL.md (DISPLAY_INFO, DIRTY, POINTER, KEYBOARD).
import { QumraError, failedPrecondition } from "../errors.js";
import type { HelperClient } from "../vm/helper-client.js";
import type { DisplaySource, FramebufferInfo } from "./types.js";

/** The part of the helper client the display uses (tests may pass a fake). */
export type DisplayHelper = Pick<HelperClient, "displayInfo" | "dirty" | "pointer" | "keyboard" | "closed" | "once">;

export function displayHelper(client: HelperClient, vmId: string): DisplayHelper {
  if (typeof (client as Partial<DisplayHelper>).displayInfo !== "function") {
    throw failedPrecondition(`VM '${vmId}' has no display: its helper has no framebuffer device`);
  }
  return client;
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
    return (await this.helper.dirty()).bitmap;
  }

  onEnd(listener: (reason: string) => void): void {
    if (this.helper.closed) {
      setImmediate(() => listener("the VM stopped"));
      return;
    }
    this.helper.once("close", () => listener("the VM stopped"));
  }
}
