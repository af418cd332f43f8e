// A VM's helper as a display endpoint: its framebuffer geometry (checked), the dirty log and the input
// devices, through the VM manager's display port (native/PROTOCOL.md: DISPLAY_INFO, DIRTY, POINTER, KEYBOARD).
import { QumraError } from "../errors.js";
import type { HelperClient } from "../vm/helper-client.js";
import type { DirtyLog, DisplayEndpoint, FramebufferInfo } from "./types.js";

/** What the VM manager hands out for a VM's display. */
export interface DisplayPort {
  info(): Promise<{ width: number; height: number; stride: number; format?: string; path: string }>;
  dirty(): Promise<DirtyLog>;
  pointer(x: number, y: number, buttons: number): Promise<void>;
  keyboard(scancodes: Uint8Array): Promise<number>;
  readonly ended: Promise<string>;
}

export function toFramebufferInfo(d: { width: number; height: number; stride: number; format?: string; path: string }, vmId: string): FramebufferInfo {
  if (d.format !== undefined && d.format.toLowerCase() !== "bgrx") throw new QumraError("internal", `VM '${vmId}': framebuffer format '${d.format}' is not bgrx`);
  if (!(d.width > 0 && d.height > 0 && d.stride >= d.width * 4)) throw new QumraError("internal", `VM '${vmId}': framebuffer ${d.width}x${d.height} stride ${d.stride} is not valid`);
  return { width: d.width, height: d.height, stride: d.stride, path: d.path };
}

/** The display endpoint of a VM, over its display port. */
export function helperEndpoint(port: DisplayPort, vmId: string): DisplayEndpoint {
  return {
    info: async () => toFramebufferInfo(await port.info(), vmId),
    dirty: () => port.dirty(),
    pointer: (x, y, buttons) => port.pointer(x, y, buttons),
    keyboard: (scancodes) => port.keyboard(scancodes),
    ended: port.ended,
  };
}

/** A display port over a helper client (until the VM manager hands out ports itself). */
export function portOf(client: HelperClient, vmId: string): DisplayPort {
  if (typeof (client as Partial<HelperClient>).displayInfo !== "function") {
    throw new QumraError("failed-precondition", `VM '${vmId}' has no display: its helper has no framebuffer device`);
  }
  const ended = new Promise<string>((resolve) => {
    if (client.closed) resolve("the VM stopped");
    else client.once("close", () => resolve("the VM stopped"));
  });
  return {
    info: () => client.displayInfo(),
    dirty: async () => {
      const d = await client.dirty();
      return { pages: d.pages, bitmap: new Uint8Array(d.bitmap.buffer, d.bitmap.byteOffset, d.bitmap.byteLength) };
    },
    pointer: (x, y, buttons) => client.pointer(x, y, buttons),
    keyboard: (scancodes) => client.keyboard(scancodes),
    ended,
  };
}
