// What display/ may do with a VM's helper: read the framebuffer's geometry and dirty log, and send
// input. The port speaks only the agent's typed errors, so display/ never sees the helper client.
import { HelperError, askHelper } from "./helper-errors.js";
import { HelperClient } from "./helper-client.js";
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

/** A helper connection that may be made again (HelperLink): the one to use now, and the end of all of them. */
export interface HelperConnection {
  usable(): Promise<HelperClient>;
  readonly ended: Promise<string>;
}

/**
 * The display port over one helper client, or over a link's connections. A call cut off by a lost
 * connection is tried once more on the new one if it only reads (info, dirty) or sets an absolute
 * state (pointer); when the link has ended instead, the error comes after `ended` has resolved, so a
 * watcher of `ended` (the display hub) sees the end first and ends its streams cleanly.
 */
export function helperDisplayPort(source: HelperClient | HelperConnection): VmDisplayPort {
  const conn: HelperConnection =
    source instanceof HelperClient ? { usable: () => Promise.resolve(source), ended: source.ended.then((err) => `the VM's helper connection ended (${err.message})`) } : source;
  const call = <T>(exchange: (c: HelperClient) => Promise<T>, retry: boolean): Promise<T> =>
    askHelper(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await exchange(await conn.usable());
        } catch (err) {
          if (!(err instanceof HelperError) || err.code !== "CONNECTION_CLOSED") throw err;
          if ((await conn.usable()).closed) {
            await conn.ended;
            throw err;
          }
          if (!retry || attempt > 0) throw err;
        }
      }
    });
  return {
    info: () =>
      call(async (c) => {
        const { width, height, stride, format, path, pages } = await c.displayInfo();
        return { width, height, stride, format, path, pages };
      }, true),
    dirty: () => call((c) => c.dirty(), true),
    pointer: (x, y, buttons) => call((c) => c.pointer(x, y, buttons), true),
    keyboard: (scancodes) => call((c) => c.keyboard(scancodes), false),
    motion: (dx, dy, wheel, buttons) => call((c) => c.mouse(dx, dy, wheel, buttons), false),
    ended: conn.ended,
  };
}
