// The agent that `qumra bench api --under-display N` measures: the real agent (runAgent: the same gRPC
// server, VM manager, display domain and encode pool as qumra-agent) whose VMs "load-0".."load-N-1" have
// scripted 1920x1080 displays instead of helpers. A drawer thread rewrites every display's framebuffer
// file with a new full-screen picture at a fixed rate (the desktop scrolled by 8 more rows each time, so
// every frame changes every row), and each display reports all its pages dirty at every poll, as a guest
// repainting its whole screen would. Run as a child process: it prints one JSON line with its address,
// then takes "draw" / "stop" lines on stdin and exits when stdin closes.
import { mkdtempSync, openSync, closeSync, ftruncateSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import pino from "pino";
import { runAgent } from "../agent/src/main.js";
import { startWorker } from "../agent/src/worker-thread.js";
import { loadConfig, type AgentConfig } from "../agent/src/config.js";
import { notFound } from "../agent/src/errors.js";
import { emptyPageBitmap, pagesOf, type DisplayEndpoint, type FramebufferInfo } from "../agent/src/display/types.js";

export interface LoadAgentOptions {
  displays: number;
  width: number;
  height: number;
  /** Full-screen pictures per second per display. */
  fps: number;
  /** The agent's --display-workers. */
  workers: number;
}

/** A display whose file another thread keeps repainting: every page is dirty at every poll. */
class RepaintedDisplay implements DisplayEndpoint {
  readonly ended = new Promise<string>(() => undefined);
  private readonly all: Uint8Array;

  constructor(readonly geometry: FramebufferInfo) {
    this.all = emptyPageBitmap(geometry).fill(0xff);
  }

  async info(): Promise<FramebufferInfo> {
    return this.geometry;
  }

  async dirty(): Promise<{ pages: number; bitmap: Uint8Array }> {
    return { pages: pagesOf(this.geometry), bitmap: this.all.slice() };
  }

  async pointer(): Promise<void> {}

  async keyboard(scancodes: Uint8Array): Promise<number> {
    return scancodes.length;
  }

  async motion(): Promise<{ packets: number; reporting: boolean }> {
    return { packets: 1, reporting: true };
  }
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2]) as LoadAgentOptions;
  const dir = mkdtempSync(path.join(os.tmpdir(), "qumra-bench-load-"));
  const shm = mkdtempSync(path.join(os.platform() === "linux" ? "/dev/shm" : os.tmpdir(), "qumra-bench-fb-"));
  const displays = new Map<string, RepaintedDisplay>();
  for (let i = 0; i < o.displays; i++) {
    const info = { width: o.width, height: o.height, stride: o.width * 4, path: path.join(shm, `load-${i}`) };
    const fd = openSync(info.path, "w+");
    ftruncateSync(fd, info.stride * info.height);
    closeSync(fd);
    displays.set(`load-${i}`, new RepaintedDisplay(info));
  }
  const config = loadConfig(["--listen", "127.0.0.1:0", "--state-dir", path.join(dir, "state"), "--runtime-dir", path.join(dir, "run"), "--display-workers", String(o.workers), "--log-level", "warn"], {}) as AgentConfig;
  const agent = await runAgent(config, pino({ level: "warn" }, pino.destination(2)), {
    displays: () => (vmId) => {
      const d = displays.get(vmId);
      if (!d) throw notFound(`no display '${vmId}' in this benchmark agent`);
      return d;
    },
  });

  const files = [...displays.values()].map((d) => d.geometry.path);
  const drawer = startWorker("display-load-drawer", import.meta.url, { workerData: { files, width: o.width, height: o.height, fps: o.fps } });

  process.stdout.write(`${JSON.stringify({ listen: agent.server.addresses[0] })}\n`);
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => drawer.postMessage(line.trim()));
  lines.on("close", async () => {
    await drawer.terminate();
    await agent.shutdown(1000);
    rmSync(dir, { recursive: true, force: true });
    rmSync(shm, { recursive: true, force: true });
    process.exit(0);
  });
}

await main();
