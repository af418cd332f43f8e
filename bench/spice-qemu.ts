// The yardstick of `qumra bench spice`: Debian's qemu-system-x86_64 serving its own display (SeaBIOS's
// screen on the standard VGA) with its built-in SPICE server (libspice-server), started in the same run.
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import net from "node:net";
import { firstScreens } from "./spice-client.js";
import type { Teardown } from "./teardown.js";

export const QEMU = "qemu-system-x86_64";
/** qemu's "Guest has not initialized the display" surface, shown until the VGA BIOS sets a mode. */
const PLACEHOLDER = { width: 640, height: 480 };

export function qemuMissing(): string | undefined {
  return spawnSync(QEMU, ["--version"]).status === 0 ? undefined : `${QEMU} is missing (apt install qemu-system-x86)`;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function kvmUsable(): boolean {
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export interface QemuSpice {
  port: number;
  /** What the real screen looked like when it was first seen. */
  screen: { width: number; height: number };
}

/**
 * Starts qemu with `-spice …,image-compression=<compression>` on a free loopback port (no ticket), and
 * waits until a client gets the BIOS's screen rather than qemu's placeholder. Stopped by `teardown`.
 */
export async function startQemuSpice(compression: string, teardown: Teardown, timeoutMs = 30_000): Promise<QemuSpice> {
  const port = await freePort();
  const args = [
    ...(kvmUsable() ? ["-enable-kvm"] : ["-accel", "tcg"]),
    "-nodefaults", "-display", "none", "-vga", "std", "-net", "none", "-m", "64", "-monitor", "none", "-serial", "none",
    "-spice", `port=${port},addr=127.0.0.1,disable-ticketing=on,image-compression=${compression}`,
  ];
  const child = teardown.child(`qemu (${compression})`, spawn(QEMU, args, { stdio: ["ignore", "ignore", "pipe"] }));
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`qemu exited with ${child.exitCode}: ${stderr.trim()}`);
    if (await listening(port)) {
      const [shot] = await firstScreens("127.0.0.1", port, 1, undefined, teardown);
      if (shot.width !== PLACEHOLDER.width || shot.height !== PLACEHOLDER.height) return { port, screen: { width: shot.width!, height: shot.height! } };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`qemu's SPICE port ${port} showed no BIOS screen within ${timeoutMs} ms`);
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
