// qumra bench display.
// (1) The pipeline alone: a 1920x1080 framebuffer file on tmpfs drawn by a scripted desktop session
//     (typing, scrolling, a window drag, a video-like region), pushed through the real display/ code
//     and StreamDisplay handler over a real gRPC stream on loopback, decoded by the client, per codec.
//     Yardstick: zlib (deflateRaw level 1) of the same rects' bytes, measured in the same run.
// (2) A demo-guest VM through the real agent: fps and bytes per frame for full-screen changes ('f')
//     and small typing-like changes ('d'), latency from the change request to the decoded frame, and
//     each codec's bytes against raw and zlib of the same frames.
import { TicketBook } from "../agent/src/spice/tickets.js";
import * as grpc from "@grpc/grpc-js";
import { existsSync, readFileSync } from "node:fs";
import { deflateRawSync } from "node:zlib";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { DisplayServiceClient, DisplayServiceService, ImageCompression, type DisplayUpdate, type StreamDisplayRequest } from "../agent/src/gen/qumra/v1/display.js";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { openConsole } from "./console-reader.js";
import { displayService } from "../agent/src/api/display-service.js";
import { DisplayDomain } from "../agent/src/display/display-domain.js";
import { EncodePool } from "../agent/src/display/encode-pool.js";
import { ScriptedFramebuffer } from "../agent/src/display/scripted-source.js";
import { FrameDecoder, sameBgr } from "../client/frame-decoder.js";
import { generateImage } from "./test-images.js";
import { rectsOf } from "../agent/src/cli/display.js";
import { percentile, round, type Progress } from "./stats.js";

export const DISPLAY_BENCH_CODECS = ["auto", "quic", "lz", "glz", "raw"] as const;
export type DisplayBenchCodec = (typeof DISPLAY_BENCH_CODECS)[number];

/** The image compression each benchmark codec stands for (auto is spice-server's default, auto_glz). */
const COMPRESSION: Record<DisplayBenchCodec, ImageCompression> = {
  auto: ImageCompression.IMAGE_COMPRESSION_AUTO_GLZ,
  quic: ImageCompression.IMAGE_COMPRESSION_QUIC,
  lz: ImageCompression.IMAGE_COMPRESSION_LZ,
  glz: ImageCompression.IMAGE_COMPRESSION_GLZ,
  raw: ImageCompression.IMAGE_COMPRESSION_OFF,
};

/** A stream of `vmId` at up to 120 fps, coded as `codec` says, for a client that decodes everything. */
function streamRequest(vmId: string, codec: DisplayBenchCodec): StreamDisplayRequest {
  return { vmId, imageCompression: COMPRESSION[codec], maxFps: 120 };
}

export interface PipelineRow {
  scenario: string;
  codec: DisplayBenchCodec | "zlib-1";
  updates: number;
  bytesPerUpdate: number;
  /** Encoded size / raw 32-bpp size of the same rects. */
  ratio: number;
  /** Updates/s the agent side sustains: dirty rects + reads + encode (no pacing, no transport). */
  updatesPerSecond: number;
  /** Raw pixel MB/s through the agent side (read + rects + encode). */
  encodeMBps: number;
  /** Client decode time per update (ms). */
  decodeMsPerUpdate: number;
  /** Updates/s end to end through gRPC with max_fps 120 (the pace caps it at 120). */
  streamUpdatesPerSecond: number;
  verified: boolean;
}

export interface PipelineOptions {
  width: number;
  height: number;
  codecs: DisplayBenchCodec[];
  /** Steps per scenario. */
  steps: number;
}

type Step = (fb: ScriptedFramebuffer) => void;

/** The scripted desktop session: named scenarios of steps, each one screen change. */
function session(width: number, height: number, steps: number): { name: string; steps: Step[] }[] {
  const desktop = generateImage("desktop", width, height);
  const photo = generateImage("photo", Math.min(width, 960), Math.min(height, 540));
  const pw = Math.min(width, 960);
  const win = { x: Math.min(300, width - 40), y: Math.min(200, height - 40), w: Math.min(1100, width - 300), h: Math.min(700, height - 200) };
  const crop = (src: Uint8Array, sw: number, x: number, y: number, w: number, h: number): Uint8Array => {
    const out = new Uint8Array(w * h * 4);
    for (let r = 0; r < h; r++) out.set(src.subarray(((y + r) * sw + x) * 4, ((y + r) * sw + x + w) * 4), r * w * 4);
    return out;
  };
  const glyph = (seed: number): Uint8Array => {
    const g = new Uint8Array(7 * 12 * 4);
    for (let i = 0; i < 7 * 12; i++) {
      const on = ((seed * 2654435761 + i * 40503) >>> 7) & 1;
      g[i * 4] = g[i * 4 + 1] = g[i * 4 + 2] = on ? 0 : 255;
    }
    return g;
  };
  const typing: Step[] = Array.from({ length: steps }, (_, i) => (fb) => {
    const col = i % 100;
    const row = Math.floor(i / 100) % 40;
    fb.draw({ x: win.x + 10 + col * 7, y: win.y + 40 + row * 13, width: 7, height: 12 }, glyph(i));
  });
  const scrolling: Step[] = Array.from({ length: steps }, (_, i) => (fb) => {
    // the window's text area scrolls by one 13-pixel line
    const area = { x: win.x + 1, y: win.y + 31, w: win.w - 2, h: win.h - 32 };
    const dy = ((i + 1) * 13) % (height - area.h);
    fb.draw({ x: area.x, y: area.y, width: area.w, height: area.h }, crop(desktop, width, area.x, dy, area.w, area.h));
  });
  const drag: Step[] = Array.from({ length: steps }, (_, i) => (fb) => {
    const w = Math.min(600, width - 100), h = Math.min(400, height - 100);
    const pos = (k: number) => ({ x: 40 + ((k * 8) % (width - w - 50)), y: 40 + ((k * 5) % (height - h - 50)) });
    const old = pos(i), now = pos(i + 1);
    fb.draw({ x: old.x, y: old.y, width: w, height: h }, crop(desktop, width, old.x, old.y, w, h));
    fb.fill({ x: now.x, y: now.y, width: w, height: h }, 0x404040);
    fb.fill({ x: now.x + 1, y: now.y + 1, width: w - 2, height: 30 }, 0x2b579a);
    fb.draw({ x: now.x + 1, y: now.y + 31, width: w - 2, height: h - 32 }, crop(desktop, width, 60 + 1, 50 + 31, w - 2, h - 32));
  });
  const video: Step[] = Array.from({ length: steps }, (_, i) => (fb) => {
    const vw = Math.min(480, pw - 64), vh = Math.min(270, photo.length / 4 / pw - 64);
    fb.draw({ x: width - vw - 40, y: 60, width: vw, height: vh }, crop(photo, pw, (i * 3) % 64, (i * 2) % 64, vw, vh));
  });
  const full: Step[] = Array.from({ length: steps }, (_, i) => (fb) => {
    // the whole screen changes: the desktop rolled up by 8 more rows each step
    const dy = ((i + 1) * 8) % height;
    fb.draw({ x: 0, y: 0, width, height: height - dy }, desktop.subarray(dy * width * 4));
    if (dy) fb.draw({ x: 0, y: height - dy, width, height: dy }, desktop.subarray(0, dy * width * 4));
  });
  return [
    { name: "typing", steps: typing },
    { name: "scrolling", steps: scrolling },
    { name: "window drag", steps: drag },
    { name: "video region", steps: video },
    { name: "full screen", steps: full },
  ];
}

/** Part 1: the pipeline without a VM. */
export async function runDisplayPipelineBench(options: PipelineOptions, progress: Progress): Promise<PipelineRow[]> {
  const { width, height } = options;
  const dir = existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const scenarios = session(width, height, options.steps);
  const initial = generateImage("desktop", width, height);
  const rows: PipelineRow[] = [];
  progress.start(scenarios.length * options.codecs.length, "display pipeline");
  for (const scenario of scenarios) {
    let zlibRow: PipelineRow | undefined;
    for (const codec of options.codecs) {
      const fb = new ScriptedFramebuffer(path.join(dir, `qumra-bench-fb-${randomUUID()}`), width, height);
      fb.draw({ x: 0, y: 0, width, height }, initial);
      await fb.dirty();
      const domain = new DisplayDomain(() => fb, new EncodePool());
      const server = new grpc.Server({ "grpc.max_send_message_length": 64 << 20 });
      server.addService(DisplayServiceService, displayService(domain, { tickets: new TicketBook(), vm: (vmId) => ({ vmId, name: vmId }), spice: () => undefined }));
      const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
      const client = new DisplayServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 64 << 20 });
      try {
        const stream = client.streamDisplay(streamRequest("bench", codec));
        const decoder = new FrameDecoder();
        let decodeMs = 0;
        let received = 0;
        let bytes = 0;
        let rawBytes = 0;
        let zlibBytes = 0;
        let zlibMs = 0;
        let waiter: (() => void) | undefined;
        stream.on("data", (u: DisplayUpdate) => {
          const t = performance.now();
          decoder.apply(u.width, u.height, rectsOf(u));
          if (received > 0) {
            decodeMs += performance.now() - t;
            for (const r of u.rects) {
              bytes += r.data.length;
              rawBytes += r.width * r.height * 4;
              if (codec === "raw") {
                const z0 = performance.now();
                zlibBytes += deflateRawSync(r.data, { level: 1 }).length;
                zlibMs += performance.now() - z0;
              }
            }
          }
          received++;
          waiter?.();
        });
        stream.on("error", () => undefined);
        const next = (count: number) => new Promise<void>((resolve) => {
          waiter = () => {
            if (received >= count) resolve();
          };
          waiter();
        });
        await next(1);
        const hub = await domain.hubOf("bench")!;
        const viewer = [...hub.viewers][0];
        const busy0 = viewer.counters.encodeMs;
        const pixels0 = viewer.counters.pixels;
        const started = performance.now();
        for (const step of scenario.steps) {
          const want = received + 1;
          step(fb);
          await next(want);
        }
        const seconds = (performance.now() - started) / 1000;
        const updates = received - 1;
        const busyMs = viewer.counters.encodeMs - busy0;
        const pixels = viewer.counters.pixels - pixels0;
        const verified = sameBgr(decoder.pixels, new Uint8Array(readFileSync(fb.geometry.path)));
        stream.cancel();
        rows.push({
          scenario: scenario.name,
          codec,
          updates,
          bytesPerUpdate: Math.round(bytes / updates),
          ratio: round(bytes / rawBytes, 4),
          updatesPerSecond: Math.round(updates / (busyMs / 1000)),
          encodeMBps: round((pixels * 4) / 1e6 / (busyMs / 1000), 1),
          decodeMsPerUpdate: round(decodeMs / updates, 3),
          streamUpdatesPerSecond: Math.round(updates / seconds),
          verified,
        });
        if (codec === "raw") {
          zlibRow = { scenario: scenario.name, codec: "zlib-1", updates, bytesPerUpdate: Math.round(zlibBytes / updates), ratio: round(zlibBytes / rawBytes, 4),
            updatesPerSecond: Math.round(updates / ((busyMs + zlibMs) / 1000)), encodeMBps: round(rawBytes / 1e6 / (zlibMs / 1000), 1), decodeMsPerUpdate: NaN, streamUpdatesPerSecond: NaN, verified: true };
        }
      } finally {
        client.close();
        server.forceShutdown();
        await domain.close();
        fb.close();
        progress.increment();
      }
    }
    if (zlibRow) rows.push(zlibRow);
  }
  progress.stop();
  return rows;
}

// ---- part 2: a VM through the real agent ----

export interface VmDisplayRow {
  codec: DisplayBenchCodec;
  /** Full-screen changes ('f' sent again as soon as the guest reports the last one done): whole screens decoded per second (updated area / screen area). */
  fullFps: number;
  /** Full-screen redraws the guest did per second in that time. */
  guestFullPerSecond: number;
  fullBytesPerFrame: number;
  fullRawBytesPerFrame: number;
  fullZlibBytesPerFrame: number;
  /** Closed loop: 'f' sent → decoded updates covering 90% of the screen. */
  fullLatencyMs: { p50: number; p99: number };
  /** Small typing-like changes ('d'): bytes per update, and the same frames raw and with zlib-1. */
  typingBytesPerUpdate: number;
  typingRawBytesPerUpdate: number;
  typingZlibBytesPerUpdate: number;
  typingLatencyMs: { p50: number; p99: number };
}

export interface VmDisplayOptions {
  target: string;
  credentials: grpc.ChannelCredentials;
  codecs: DisplayBenchCodec[];
  width: number;
  height: number;
  /** Closed-loop changes per codec and kind (latency samples). */
  samples: number;
  /** Seconds of continuous full-screen changes per codec (fps). */
  fpsSeconds: number;
}

interface Received {
  update: DisplayUpdate;
  at: number;
  area: number;
}

export async function runDisplayVmBench(options: VmDisplayOptions, progress: Progress): Promise<VmDisplayRow[]> {
  const vms = new VmServiceClient(options.target, options.credentials);
  const display = new DisplayServiceClient(options.target, options.credentials, { "grpc.max_receive_message_length": 64 << 20 });
  const vmId = `bench-display-${randomUUID().slice(0, 8)}`;
  const unary = <Req, Res>(fn: (req: Req, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, req: Req) =>
    new Promise<Res>((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res))));
  const rows: VmDisplayRow[] = [];
  try {
    await unary(vms.createVm.bind(vms), { vmId, requestId: randomUUID(), spec: { name: vmId, vcpus: 1, memoryBytes: 64n << 20n, boot: { $case: "demo", value: {} }, display: { width: options.width, height: options.height }, labels: {}, imageCompression: 0, cpuWeight: 0 } });
    const con = openConsole(vms, vmId);
    await unary(vms.startVm.bind(vms), { vmId });
    await con.waitFor("qumra demo guest");
    progress.start(options.codecs.length, "display vm");
    const screen = options.width * options.height;
    for (const codec of options.codecs) {
      const decoder = new FrameDecoder();
      const got: Received[] = [];
      let waiter: (() => void) | undefined;
      const stream = display.streamDisplay(streamRequest(vmId, codec));
      stream.on("data", (u: DisplayUpdate) => {
        decoder.apply(u.width, u.height, rectsOf(u));
        got.push({ update: u, at: performance.now(), area: u.rects.reduce((n, r) => n + r.width * r.height, 0) });
        waiter?.();
      });
      stream.on("error", () => undefined);
      const waitUpdate = (from: number, pred: (r: Received) => boolean, timeoutMs = 20_000, restart?: () => void) => new Promise<Received>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`display of ${vmId}: no matching update within ${timeoutMs} ms`)), timeoutMs);
        waiter = () => {
          restart?.();
          const hit = got.slice(from).find(pred);
          if (hit) {
            clearTimeout(timer);
            waiter = undefined;
            resolve(hit);
          }
        };
        waiter();
      });
      await waitUpdate(0, () => true);
      const zlibOf = (u: DisplayUpdate) => {
        let n = 0;
        for (const r of u.rects) {
          const px = Buffer.alloc(r.width * r.height * 4);
          const screen = decoder.pixels;
          for (let y = 0; y < r.height; y++) px.set(screen.subarray(((r.y + y) * options.width + r.x) * 4, ((r.y + y) * options.width + r.x + r.width) * 4), y * r.width * 4);
          n += deflateRawSync(px, { level: 1 }).length;
        }
        return n;
      };
      const bytesOf = (u: DisplayUpdate) => u.rects.reduce((n, r) => n + r.data.length, 0);

      // Closed loop, full screen: latency until updates covering 90% of the screen are decoded (the
      // guest's redraw can straddle polls), and those updates' bytes against raw and zlib of the frame.
      const full = { lat: [] as number[], bytes: 0, raw: 0, zlib: 0, frames: 0 };
      for (let i = 0; i < options.samples; i++) {
        const from = got.length;
        const mark = con.text().length;
        const t0 = performance.now();
        con.send("f");
        let covered = 0;
        let bytes = 0;
        const hit = await waitUpdate(from, (r) => {
          covered += r.area;
          bytes += bytesOf(r.update);
          return covered >= 0.9 * screen;
        }, 20_000, () => (covered = bytes = 0));
        full.lat.push(hit.at - t0);
        await con.waitFor("full ", 20_000, mark);
        full.bytes += bytes;
        full.raw += screen * 4;
        full.zlib += deflateRawSync(decoder.pixels, { level: 1 }).length;
        full.frames++;
      }
      // Closed loop, small change: the demo guest's 'd' repaints 200x100 at (64, 64); other updates
      // (the taskbar clock) are not counted.
      const D = { x: 64, y: 64, width: 200, height: 100 };
      const hitsD = (r: Received) => r.update.rects.some((q) => q.x < D.x + D.width && D.x < q.x + q.width && q.y < D.y + D.height && D.y < q.y + q.height);
      const typing = { lat: [] as number[], bytes: 0, raw: 0, zlib: 0, updates: 0 };
      for (let i = 0; i < options.samples; i++) {
        const from = got.length;
        const mark = con.text().length;
        const t0 = performance.now();
        con.send("d");
        const hit = await waitUpdate(from, hitsD);
        typing.lat.push(hit.at - t0);
        await con.waitFor("drawn ", 20_000, mark);
        typing.bytes += bytesOf(hit.update);
        typing.raw += hit.area * 4;
        typing.zlib += zlibOf(hit.update);
        typing.updates++;
      }
      // Open loop, full screen: the guest redraws the whole screen back to back.
      const from = got.length;
      const t0 = performance.now();
      let sent = 0;
      while (performance.now() - t0 < options.fpsSeconds * 1000) {
        const mark = con.text().length;
        con.send("f");
        sent++;
        await con.waitFor("full ", 20_000, mark);
      }
      const seconds = (performance.now() - t0) / 1000;
      const area = got.slice(from).reduce((n, r) => n + r.area, 0);
      stream.cancel();
      rows.push({
        codec,
        fullFps: round(area / screen / seconds, 1),
        guestFullPerSecond: round(sent / seconds, 1),
        fullBytesPerFrame: Math.round(full.bytes / full.frames),
        fullRawBytesPerFrame: Math.round(full.raw / full.frames),
        fullZlibBytesPerFrame: Math.round(full.zlib / full.frames),
        fullLatencyMs: { p50: round(percentile(full.lat, 50), 1), p99: round(percentile(full.lat, 99), 1) },
        typingBytesPerUpdate: Math.round(typing.bytes / typing.updates),
        typingRawBytesPerUpdate: Math.round(typing.raw / typing.updates),
        typingZlibBytesPerUpdate: Math.round(typing.zlib / typing.updates),
        typingLatencyMs: { p50: round(percentile(typing.lat, 50), 1), p99: round(percentile(typing.lat, 99), 1) },
      });
      progress.increment();
    }
    progress.stop();
    con.close();
    return rows;
  } finally {
    await unary(vms.deleteVm.bind(vms), { vmId, force: true }).catch(() => undefined);
    vms.close();
    display.close();
  }
}
