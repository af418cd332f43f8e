// The display pipeline without a VM: a framebuffer file drawn on the host with its own dirty-page log,
// the real display/ code and StreamDisplay handler behind a real gRPC server on loopback, and clients
// that decode every update. No timing assertions: waits are for content, bounds are on counters.
import { TicketBook } from "../agent/src/spice/tickets.js";
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import * as grpc from "@grpc/grpc-js";
import http2 from "node:http2";
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { Codec, DisplayServiceClient, DisplayServiceService, ImageCompression, StreamDisplayRequest, type DisplayUpdate } from "../agent/src/gen/qumra/v1/display.js";
import { DisplayDomain } from "../agent/src/display/display-domain.js";
import { EncodePool } from "../agent/src/display/encode-pool.js";
import { ScriptedFramebuffer } from "../agent/src/display/scripted-source.js";
import { FrameDecoder, sameBgr, firstBgrDifference } from "../client/frame-decoder.js";
import { notFound } from "../agent/src/errors.js";
import { generateImage } from "../bench/test-images.js";
import { DEFAULT_DECODER, displayService } from "../agent/src/api/display-service.js";
import type { DisplayUpdateData } from "../agent/src/display/types.js";
import { threadId } from "node:worker_threads";
import { watchDisplay, type Watcher } from "./helpers/display.js";

const W = 640;
const H = 400;
const shmDir = existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
const compressions = {
  AUTO_GLZ: ImageCompression.IMAGE_COMPRESSION_AUTO_GLZ,
  QUIC: ImageCompression.IMAGE_COMPRESSION_QUIC,
  LZ: ImageCompression.IMAGE_COMPRESSION_LZ,
  GLZ: ImageCompression.IMAGE_COMPRESSION_GLZ,
  OFF: ImageCompression.IMAGE_COMPRESSION_OFF,
};


describe("display pipeline (scripted framebuffer, real gRPC)", () => {
  let fb: ScriptedFramebuffer;
  let domain: DisplayDomain;
  let server: grpc.Server;
  let client: DisplayServiceClient;
  let port: number;

  const filePixels = () => new Uint8Array(readFileSync(fb.geometry.path));

  beforeEach(async () => {
    fb = new ScriptedFramebuffer(path.join(shmDir, `qumra-test-fb-${randomUUID()}`), W, H);
    fb.draw({ x: 0, y: 0, width: W, height: H }, generateImage("desktop", W, H));
    await fb.dirty(); // the initial picture is what a keyframe shows
    domain = new DisplayDomain((vmId) => {
      if (vmId !== "fb") throw notFound(`no VM '${vmId}' on this host`);
      return fb;
    }, new EncodePool(1));
    server = new grpc.Server();
    server.addService(DisplayServiceService, displayService(domain, { tickets: new TicketBook(), vm: (vmId) => ({ vmId, name: vmId }), spice: () => undefined }));
    port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    client = new DisplayServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  afterEach(async () => {
    client.close();
    server.forceShutdown();
    await domain.close();
    fb.close();
  });

  const watch = (compression: ImageCompression, maxFps = 120): Watcher =>
    watchDisplay(client, { vmId: "fb", compression, maxFps, filePixels, width: W, timeoutMs: 20_000 });
  const inSync = (w: Watcher) => () => w.decoder.pixels.length > 0 && sameBgr(w.decoder.pixels, filePixels());
  /** Resolves once pred() holds, checked every 20 ms for up to 20 s. */
  const waitFor = async (pred: () => boolean, what: string): Promise<void> => {
    for (const deadline = Date.now() + 20_000; !pred(); await new Promise((r) => setTimeout(r, 20))) {
      if (Date.now() > deadline) throw new Error(`${what} not reached`);
    }
  };

  it("keyframe first, then only changed rects; every codec's decoded frame equals the file after each change", async () => {
    const { AUTO_GLZ, QUIC, LZ, GLZ, OFF } = compressions;
    const watchers = [AUTO_GLZ, QUIC, LZ, GLZ, OFF].map((c) => watch(c));
    for (const w of watchers) await w.until(inSync(w), "keyframe");
    for (const w of watchers) {
      const k = w.updates[0];
      expect(k.sequence).toBe(1n);
      expect(k.keyframe).toBe(true);
      expect([k.width, k.height]).toEqual([W, H]);
    }
    expect(watchers[4].updates[0].rects[0].codec).toBe(Codec.CODEC_RAW);
    expect(watchers[4].updates[0].rects[0].data.length).toBe(W * H * 4);
    // the raw stream carries the pad bytes too: byte-exact
    expect(Buffer.from(watchers[4].decoder.pixels).equals(readFileSync(fb.geometry.path))).toBe(true);

    const photo = generateImage("photo", 200, 120);
    const steps: (() => void)[] = [
      () => fb.fill({ x: 100, y: 50, width: 7, height: 12 }, 0x000000), // a typed glyph
      () => fb.draw({ x: 300, y: 200, width: 200, height: 120 }, photo), // a video-like region
      () => fb.fill({ x: 0, y: H - 20, width: W, height: 20 }, 0x202020), // a taskbar repaint
      () => { fb.fill({ x: 5, y: 5, width: 3, height: 3 }, 0xff0000); fb.fill({ x: W - 9, y: H - 9, width: 4, height: 4 }, 0x00ff00); }, // two far corners
      () => fb.touch(4096 * 10, 4096 * 3), // pages written with the same pixels
      () => fb.fill({ x: 0, y: 0, width: W, height: H }, 0x3a6ea5), // full screen
    ];
    for (const [i, step] of steps.entries()) {
      step();
      for (const w of watchers) await w.until(inSync(w), `step ${i}`);
    }
    for (const w of watchers) {
      const seqs = w.updates.map((u) => Number(u.sequence));
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      expect(w.updates.slice(1).every((u) => !u.keyframe)).toBe(true);
      // small changes give small rects: the glyph step's update is not the whole screen
      expect(w.updates.slice(1).some((u) => u.rects.every((r) => r.width * r.height < W * H / 4))).toBe(true);
    }
    // auto picks QUIC for the photo-like region and GLZ for the synthetic keyframe
    const auto = watchers[0].updates.flatMap((u) => u.rects.map((r) => r.codec));
    expect(auto).toContain(Codec.CODEC_QUIC);
    expect(auto[0]).toBe(Codec.CODEC_GLZ);
    expect(watchers[3].updates.flatMap((u) => u.rects.map((r) => r.codec)).every((c) => c === Codec.CODEC_GLZ || c === Codec.CODEC_RAW)).toBe(true);
    for (const w of watchers) w.cancel();
  });

  it("two adapters on one VM (gRPC and an in-process one) share one hub and both see every change", async () => {
    const grpcWatcher = watch(compressions.GLZ);
    // The second adapter takes updates from the domain itself, as the SPICE server does.
    const local = new FrameDecoder();
    const localUpdates: DisplayUpdateData[] = [];
    const stopLocal = new AbortController();
    const localDone = domain.watch("fb", { policy: { compression: "lz", decoder: DEFAULT_DECODER }, maxFps: 120 }, {
      send: async (u) => {
        local.apply(u.width, u.height, u.rects);
        localUpdates.push(u);
      },
    }, stopLocal.signal);
    const localInSync = () => local.pixels.length > 0 && sameBgr(local.pixels, filePixels());
    await grpcWatcher.until(inSync(grpcWatcher), "keyframe");
    await waitFor(localInSync, "local keyframe");
    const hub = await domain.hubOf("fb")!;
    expect(hub.viewers.size).toBe(2);
    // Each step changes a different small area once: a consumer that missed a dirty page would never
    // show it (nothing repaints it later), so both decoded frames equal the file only if both saw it.
    for (let i = 0; i < 40; i++) {
      fb.fill({ x: (i * 53) % (W - 8), y: (i * 29) % (H - 8), width: 8, height: 8 }, 0x010101 * i + 0x102030);
      await grpcWatcher.until(inSync(grpcWatcher), `step ${i} (gRPC)`);
      await waitFor(localInSync, `step ${i} (local)`);
    }
    // The log was fetched only by the hub: one consumer, however many adapters.
    expect(fb.dirtyCalls).toBe(hub.counters.polls + 1); // + the test's own fetch before the viewers joined
    expect(grpcWatcher.updates.length).toBeGreaterThan(1);
    expect(localUpdates.length).toBeGreaterThan(1);
    stopLocal.abort();
    await localDone;
    grpcWatcher.cancel();
  });

  it("encodes in a worker thread, not on the agent's event loop", async () => {
    const w = watch(compressions.AUTO_GLZ);
    await w.until(inSync(w), "keyframe");
    const [viewer] = (await domain.hubOf("fb")!).viewers;
    expect(viewer.counters.pixels).toBeGreaterThanOrEqual(W * H);
    expect(viewer.counters.thread).not.toBe(0); // 0 is the main thread's threadId
    expect(viewer.counters.thread).not.toBe(threadId);
    w.cancel();
  });

  it("a resolution change starts a new surface: a keyframe of the new size, GLZ's image ids going on", async () => {
    for (const compression of [compressions.LZ, compressions.GLZ]) {
      const w = watch(compression);
      await w.until(inSync(w), "keyframe");
      fb.resize(320, 200);
      fb.draw({ x: 0, y: 0, width: 320, height: 200 }, generateImage("photo", 320, 200));
      await w.until(() => w.decoder.width === 320 && inSync(w)(), "new surface");
      const first = w.updates.findIndex((u) => u.width === 320);
      expect(w.updates[first]).toMatchObject({ surfaceChanged: true, keyframe: true, height: 200 });
      expect(w.updates.filter((u) => u.surfaceChanged).length).toBe(2); // the first surface and this one
      if (compression === compressions.GLZ) {
        const ids = w.updates.flatMap((u) => u.rects.filter((r) => r.codec === Codec.CODEC_GLZ).map((r) => Number(r.glzImageId)));
        expect(ids).toEqual(ids.map((_, i) => i));
      }
      fb.fill({ x: 10, y: 10, width: 20, height: 20 }, 0xffffff);
      await w.until(inSync(w), "change on the new surface");
      w.cancel();
      fb.resize(W, H);
      fb.draw({ x: 0, y: 0, width: W, height: H }, generateImage("desktop", W, H));
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  it("a viewer that decodes QUIC and LZ with no GLZ window (spice-html5) is never sent GLZ", async () => {
    const w = watchDisplay(client, { vmId: "fb", compression: compressions.AUTO_GLZ, decoder: { codecs: [Codec.CODEC_QUIC, Codec.CODEC_LZ], glzWindowPixels: 0 }, maxFps: 120, filePixels, width: W, timeoutMs: 20_000 });
    await w.until(inSync(w), "keyframe");
    fb.draw({ x: 300, y: 200, width: 200, height: 120 }, generateImage("photo", 200, 120));
    await w.until(inSync(w), "photo");
    fb.fill({ x: 0, y: H - 20, width: W, height: 20 }, 0x202020);
    await w.until(inSync(w), "taskbar");
    const codecs = new Set(w.updates.flatMap((u) => u.rects.map((r) => r.codec)));
    expect(codecs.has(Codec.CODEC_GLZ)).toBe(false);
    expect(codecs.has(Codec.CODEC_LZ)).toBe(true);
    expect(codecs.has(Codec.CODEC_QUIC)).toBe(true);
    w.cancel();
  });

  it("a viewer that never reads neither queues updates nor stalls another viewer", async () => {
    // A peer that never reads: a plain HTTP/2 request whose stream stays paused, so its flow-control
    // window closes. (A paused grpc-js client would not do: it keeps reading into its own buffer.)
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const body = StreamDisplayRequest.encode({ vmId: "fb", imageCompression: compressions.LZ, maxFps: 120 }).finish();
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    const stalled = session.request({ ":method": "POST", ":path": "/qumra.v1.DisplayService/StreamDisplay", "content-type": "application/grpc", te: "trailers" });
    stalled.end(frame);
    stalled.pause();
    stalled.on("error", () => undefined);
    await new Promise<void>((resolve) => stalled.once("response", () => resolve()));
    const live = watch(compressions.OFF);
    await live.until(inSync(live), "keyframe");
    const hub = await domain.hubOf("fb")!;
    expect(hub.viewers.size).toBe(2);
    const stalledViewer = [...hub.viewers].find((v) => v.options.policy.compression === "lz")!;
    const liveViewer = [...hub.viewers].find((v) => v.options.policy.compression === "off")!;

    const rounds = 60;
    for (let i = 0; i < rounds; i++) {
      fb.draw({ x: 0, y: 0, width: W, height: H }, generateImage(i % 2 ? "noise" : "photo", W, H).map((v) => (v + i) & 0xff));
      await live.until(inSync(live), `round ${i}`);
    }
    const s = stalledViewer.counters;
    const l = liveViewer.counters;
    // The live viewer saw every round; the stalled one took a few updates, then only merged its region.
    expect(l.updates).toBeGreaterThanOrEqual(rounds + 1);
    expect(s.maxInFlight).toBeLessThanOrEqual(1);
    expect(l.maxInFlight).toBeLessThanOrEqual(1);
    // its keyframe (over 64 KiB) never left: nothing after it was even produced
    expect(s.updates).toBeLessThanOrEqual(2);
    // its pending region is a fixed-size bitmap; the polls it missed are only counted
    expect(s.pollsSeen).toBeGreaterThanOrEqual(rounds - 1);
    expect(hub.counters.dirtyPolls).toBeGreaterThanOrEqual(rounds);
    live.cancel();
    session.destroy();
  });

  it("a slow reader gets merged updates that cover everything since its last one", async () => {
    const w = watch(compressions.LZ, 1);
    await w.until(inSync(w), "keyframe");
    for (let i = 0; i < 8; i++) {
      fb.fill({ x: 10 + i * 20, y: 10, width: 10, height: 10 }, 0xff00ff);
      await new Promise((r) => setTimeout(r, 5)); // past the hub's coalescing interval: each change is its own poll
      await (await domain.hubOf("fb")!).poll();
    }
    await w.until(inSync(w), "merged update");
    expect(w.updates.slice(1).reduce((n, u) => n + u.merged, 0)).toBeGreaterThan(0);
    w.cancel();
  });

  it("ends the stream cleanly when the display goes away, and answers NOT_FOUND and INVALID_ARGUMENT", async () => {
    const w = watch(compressions.GLZ);
    await w.until(inSync(w), "keyframe");
    fb.end();
    expect(await w.ended).toBe("end");

    const err = (req: { vmId: string; maxFps?: number; glzWindowPixels?: number }) => new Promise<grpc.ServiceError>((resolve) => {
      const decoder = req.glzWindowPixels === undefined ? undefined : { codecs: [Codec.CODEC_GLZ], glzWindowPixels: req.glzWindowPixels };
      const s = client.streamDisplay({ vmId: req.vmId, imageCompression: 0, maxFps: req.maxFps ?? 0, decoder });
      s.on("data", () => undefined);
      s.on("error", resolve);
    });
    expect((await err({ vmId: "nope" })).code).toBe(grpc.status.NOT_FOUND);
    const fps = await err({ vmId: "fb", maxFps: 121 });
    expect(fps.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(fps.details).toMatch(/max_fps/);
    const glz = await err({ vmId: "fb", glzWindowPixels: 16_777_217 });
    expect(glz.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(glz.details).toMatch(/glz_window_pixels/);
  });
});
