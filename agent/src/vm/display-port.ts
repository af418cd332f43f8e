// What display/ may do with a VM's helper: read the framebuffer's geometry and dirty log, and send
// input. The port speaks only the agent's typed errors, so display/ never sees the helper client.
import { askHelper } from "./helper-errors.js";
import type { HelperClient } from "./helper-client.js";
import type { MouseReply } from "./helper-protocol.js";

export interface VmDisplayPort {
  /** Framebuffer geometry (DISPLAY_INFO); `path` is the framebuffer file, `pages` its 4 KiB pages. */
  info(): Promise<{ width: number; height: number; stride: number; format: string; path: string; pages: number }>;
  /** Fetch-and-clear of the dirty log: bit i of byte i >> 3 (LSB first) = page i written since the last call. */
  dirty(): Promise<{ pages: number; bitmap: Uint8Array }>;
  /** Absolute pointer position and buttons (bit 0 left, 1 right, 2 middle). */
  pointer(x: number, y: number, buttons: number): Promise<void>;
  /** Queues set-1 scancode bytes for the i8042; resolves with how many were accepted. */
  keyboard(scancodes: Uint8Array): Promise<number>;
  /** Relative motion for the PS/2 mouse (screen coordinates, dy positive down; wheel positive towards the user). */
  motion(dx: number, dy: number, wheel: number, buttons: number): Promise<MouseReply>;
  /** Resolves once, with a reason, when this helper connection ends (VM stopped, helper died). */
  readonly ended: Promise<string>;
}

/**
 * The display port over a helper connection: a client, or the current client of a link that may
 * connect again (then `ended` is the link's end, not one connection's).
 */
export function helperDisplayPort(source: HelperClient | (() => HelperClient), ended?: Promise<string>): VmDisplayPort {
  const client = typeof source === "function" ? source : () => source;
  return {
    info: () =>
      askHelper(async () => {
        const { width, height, stride, format, path, pages } = await client().displayInfo();
        return { width, height, stride, format, path, pages };
      }),
    dirty: () => askHelper(() => client().dirty()),
    pointer: (x, y, buttons) => askHelper(() => client().pointer(x, y, buttons)),
    keyboard: (scancodes) => askHelper(() => client().keyboard(scancodes)),
    motion: (dx, dy, wheel, buttons) => askHelper(() => client().mouse(dx, dy, wheel, buttons)),
    ended: ended ?? client().ended.then((err) => `the VM's helper connection ended (${err.message})`),
  };
}
