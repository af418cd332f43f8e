// A VM's display as a display source: DISPLAY_INFO, the framebuffer's dirty log, and input devices,
// through the VM's display port (agent/src/vm/display-port.ts).
import { QumraError } from "../errors.js";
import type { VmDisplayPort } from "../vm/display-port.js";
import type { DisplaySource, FramebufferInfo } from "./types.js";

/** The part of the VM's display port that input delivery uses (tests may pass a fake). */
export type DisplayHelper = Pick<VmDisplayPort, "pointer" | "keyboard">;

export function toFramebufferInfo(d: { width: number; height: number; stride: number; format?: string; path: string }, vmId: string): FramebufferInfo {
  if (d.format !== undefined && d.format.toLowerCase() !== "bgrx") throw new QumraError("internal", `VM '${vmId}': framebuffer format '${d.format}' is not bgrx`);
  if (!(d.width > 0 && d.height > 0 && d.stride >= d.width * 4)) throw new QumraError("internal", `VM '${vmId}': framebuffer ${d.width}x${d.height} stride ${d.stride} is not valid`);
  return { width: d.width, height: d.height, stride: d.stride, path: d.path };
}

export class HelperDisplaySource implements DisplaySource {
  constructor(
    private readonly port: VmDisplayPort,
    private readonly vmId: string,
  ) {}

  async info(): Promise<FramebufferInfo> {
    return toFramebufferInfo(await this.port.info(), this.vmId);
  }

  async dirty(): Promise<Uint8Array> {
    return (await this.port.dirty()).bitmap;
  }

  onEnd(listener: (reason: string) => void): void {
    void this.port.ended.then(listener);
  }
}
