// qemu as a real SPICE server for tests of the pieces around qumra's own: a SeaBIOS text screen served
// on a loopback SPICE port, paused and resumed through its monitor, screenshotted by spice-gtk's spicy-screenshot.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { cleanup, tempDir } from "./agent.js";
import { hasKvm } from "./kvm.js";
import { freePort } from "./ports.js";
import { readPpm, type RgbImage } from "./rgb-image.js";
import { hasSpicy, runSpicy } from "./spice-tools.js";

export const QEMU = "/usr/bin/qemu-system-x86_64";
export const hasQemuSpice = hasKvm && existsSync(QEMU) && hasSpicy;

if (hasKvm && !hasQemuSpice) {
  console.warn(`\n*** ${QEMU} or spicy-screenshot is absent: the tests with qemu as SPICE peer are SKIPPED: install qemu-system-x86 and spice-client-gtk ***\n`);
}

export interface QemuSpice {
  port: number;
  /** Stops the vCPUs (and the virtual clock, so the text cursor stops blinking): the screen holds still. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** spicy-screenshot of the primary surface, straight from qemu's SPICE port. */
  screenshot(): Promise<RgbImage>;
  log(): string;
  stop(): Promise<void>;
}


async function waitForPort(port: number, child: ChildProcess, log: () => string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (open) return;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`qemu's SPICE port ${port} did not open:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startQemuSpice(): Promise<QemuSpice> {
  const port = await freePort();
  const dir = tempDir("qemu");
  const child = spawn(
    QEMU,
    ["-enable-kvm", "-m", "64", "-vga", "std", "-display", "none", "-net", "none", "-monitor", "stdio", "-spice", `port=${port},addr=127.0.0.1,disable-ticketing=on`],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const log = () => output;
  // An HMP command answers with the next "(qemu) " prompt.
  const monitor = async (command: string): Promise<void> => {
    const mark = output.length;
    child.stdin!.write(`${command}\n`);
    const deadline = Date.now() + 5000;
    while (!output.slice(mark).includes("(qemu) ")) {
      if (Date.now() > deadline) throw new Error(`qemu monitor: no prompt after '${command}':\n${output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    await waitForPort(port, child, log);
  } catch (err) {
    child.kill("SIGKILL");
    cleanup(dir);
    throw err;
  }
  return {
    port,
    log,
    pause: () => monitor("stop"),
    resume: () => monitor("cont"),
    async screenshot() {
      const file = path.join(dir, "screen.ppm");
      const shot = await runSpicy(["-h", "127.0.0.1", "-p", String(port), "-o", file], {}, 15_000);
      if (shot.code !== 0) throw new Error(`spicy-screenshot of qemu exited with ${shot.code}: ${shot.output}`);
      return readPpm(file);
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
      cleanup(dir);
    },
  };
}
