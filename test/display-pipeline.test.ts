// The display pipeline without a VM: a framebuffer file drawn on the host with its own dirty-page log,
// the real display/ code and StreamDisplay handler behind a real gRPC server on loopback, and clients
// that decode every update. No timing assertions: waits are for content, bounds are on counters.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import * as grpc from "@grpc/grpc-js";
import http2 from "node:http2";
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { Codec, DisplayServiceClient, DisplayServiceService, StreamDisplayRequest, type DisplayUpdate } from "../agent/src/gen/qumra/v1/display.js";
import { streamDisplayHandler } from "../agent/src/api/display-service.js";
import { unimplementedService } from "../agent/src/api/status.js";
import { DisplayHubs } from "../agent/src/display/display-hub.js";
import { ScriptedFramebuffer } from "../agent/src/display/scripted-source.js";
import { FrameDecoder, sameBgr, firstBgrDifference } from "../agent/src/display/frame-decoder.js";
import { notFound } from "../agent/src/errors.js";
import { generateImage } from "../agent/src/codec/testimages.js";
import { watchDisplay, type Watcher } from "./helpers/display.js";

const W = 640;
const H = 400;
const shmDir = existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();


describe("display pipeline (scripted framebuffer, real gRPC)", () => {
  let fb: ScriptedFramebuffer;
  let hubs: DisplayHubs;
  let server: grpc.Server;
  let client: DisplayServiceClient;
  let port: number;

  const filePixels = () => new Uint8Array(readFileSync(fb.geometry.path));

  beforeEach(async () => {
    fb = new ScriptedFramebuffer(path.join(shmDir, `qumra-test-fb-${randomUUID()}`), W, H);
    fb.draw({ x: 0, y: 0, width: W, height: H }, generateImage("desktop", W, H));
    await fb.dirty(); // the initial picture is what a keyframe shows
    hubs = new DisplayHubs((vmId) => {
      if (vmId !== "fb") throw notFound(`no VM '${vmId}' on this host`);
      return fb;
    });
    server = new grpc.Server();
    server.addService(DisplayServiceService, { ...unimplementedService(DisplayServiceService, "test"), streamDisplay: streamDisplayHandler(hubs) });
    port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    client = new DisplayServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  afterEach(() => {
    client.close();
    server.forceShutdown();
    fb.close();
  });

  const watch = (codec: Codec, maxFps = 120): Watcher =>
    watchDisplay(client, { vmId: "fb", codec, maxFps, filePixels, width: W, timeoutMs: 20_000 });
  const inSync = (w: Watcher) => () => w.decoder.pixels.length > 0 && sameBgr(w.decoder.pixels, filePixels());

  it("keyframe first, then only changed rects; every codec's decoded frame equals the file after each change", async () => {
    const codecs = [Codec.CODEC_UNSPECIFIED, Codec.CODEC_QUIC, Codec.CODEC_LZ, Codec.CODEC_GLZ, Codec.CODEC_RAW];
    const watchers = codecs.map((c) => watch(c));
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

  it("a viewer that never reads neither queues updates nor stalls another viewer", async () => {
    // A peer that never reads: a plain HTTP/2 request whose stream stays paused, so its flow-control
    // window closes. (A paused grpc-js client would not do: it keeps reading into its own buffer.)
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const body = StreamDisplayRequest.encode({ vmId: "fb", codec: Codec.CODEC_LZ, maxFps: 120, glzWindowPixels: 0 }).finish();
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    const stalled = session.request({ ":method": "POST", ":path": "/qumra.v1.DisplayService/StreamDisplay", "content-type": "application/grpc", te: "trailers" });
    stalled.end(frame);
    stalled.pause();
    stalled.on("error", () => undefined);
    await new Promise<void>((resolve) => stalled.once("response", () => resolve()));
    const live = watch(Codec.CODEC_RAW);
    await live.until(inSync(live), "keyframe");
    const hub = await hubs.hubOf("fb")!;
    expect(hub.viewers.size).toBe(2);
    const stalledViewer = [...hub.viewers].find((v) => v.options.codec === "lz")!;
    const liveViewer = [...hub.viewers].find((v) => v.options.codec === "raw")!;

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
    const w = watch(Codec.CODEC_LZ, 1);
    await w.until(inSync(w), "keyframe");
    for (let i = 0; i < 8; i++) {
      fb.fill({ x: 10 + i * 20, y: 10, width: 10, height: 10 }, 0xff00ff);
      await new Promise((r) => setTimeout(r, 5)); // past the hub's coalescing interval: each change is its own poll
      await (await hubs.hubOf("fb")!).poll();
    }
    await w.until(inSync(w), "merged update");
    expect(w.updates.slice(1).reduce((n, u) => n + u.merged, 0)).toBeGreaterThan(0);
    w.cancel();
  });

  it("ends the stream cleanly when the display goes away, and answers NOT_FOUND and INVALID_ARGUMENT", async () => {
    const w = watch(Codec.CODEC_GLZ);
    await w.until(inSync(w), "keyframe");
    fb.end();
    expect(await w.ended).toBe("end");

    const err = (req: { vmId: string; maxFps?: number; glzWindowPixels?: number }) => new Promise<grpc.ServiceError>((resolve) => {
      const s = client.streamDisplay({ vmId: req.vmId, codec: 0, maxFps: req.maxFps ?? 0, glzWindowPixels: req.glzWindowPixels ?? 0 });
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
