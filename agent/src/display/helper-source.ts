// A VM's helper as a display endpoint: its framebuffer geometry (checked), the dirty log and the input
// devices, through the VM manager's display port (vm/display-port.ts; native/PROTOCOL.md: DISPLAY_INFO,
// DIRTY, POINTER, KEYBOARD, MOUSE). The port already speaks the agent's typed errors.
import { QumraError } from "../errors.js";
import type { VmDisplayPort } from "../vm/display-port.js";
import type { DisplayEndpoint, FramebufferInfo } from "./types.js";

export function toFramebufferInfo(d: { width: number; height: number; stride: number; format?: string; path: string }, vmId: string): FramebufferInfo {
  if (d.format !== undefined && d.format.toLowerCase() !== "bgrx") throw new QumraError("internal", `VM '${vmId}': framebuffer format '${d.format}' is not bgrx`);
  if (!(d.width > 0 && d.height > 0 && d.stride >= d.width * 4)) throw new QumraError("internal", `VM '${vmId}': framebuffer ${d.width}x${d.height} stride ${d.stride} is not valid`);
  return { width: d.width, height: d.height, stride: d.stride, path: d.path };
}

/** The display endpoint of a VM, over its display port. */
export function helperEndpoint(port: VmDisplayPort, vmId: string): DisplayEndpoint {
  return {
    info: async () => toFramebufferInfo(await port.info(), vmId),
    dirty: () => port.dirty(),
    pointer: (x, y, buttons) => port.pointer(x, y, buttons),
    keyboard: (scancodes) => port.keyboard(scancodes),
    motion: (dx, dy, wheel, buttons) => port.motion(dx, dy, wheel, buttons),
    ended: port.ended,
  };
}
