// DisplayService end to end on real KVM: a real agent, the demo guest drawing into the helper's
// framebuffer, real gRPC streams decoded here, compared with the framebuffer file itself.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import path from "node:path";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { Codec, DisplayServiceClient, ImageCompression, ScreenshotFormat, type DisplayUpdate } from "../agent/src/gen/qumra/v1/display.js";
import { FrameDecoder, sameBgr, firstBgrDifference } from "../client/frame-decoder.js";
import { decodePng } from "../agent/src/codec/png.js";
import { startAgent, cleanup, type RunningAgent } from "./helpers/agent.js";
import { call, callError } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { watchDisplay, type Watcher } from "./helpers/display.js";
import { attachConsole, createVm, demoSpec, type ConsoleReader } from "./helpers/vm.js";

const W = 640;
const H = 480;


describe.skipIf(!hasKvm)("display of a demo guest on real KVM", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let display: DisplayServiceClient;
  let con: ConsoleReader;
  const vmId = "screen";
  const fbFile = () => path.join(agent.runtimeDir, vmId, "framebuffer");
  const filePixels = () => new Uint8Array(readFileSync(fbFile()).subarray(0, W * H * 4));

  beforeAll(async () => {
    agent = await startAgent();
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    display = new DisplayServiceClient(agent.address!, grpc.credentials.createInsecure());
    await createVm(vms, vmId, demoSpec(vmId, { display: { width: W, height: H } }));
    con = attachConsole(vms, vmId);
    await con.waitFor("qumra demo guest");
  });
  afterAll(async () => {
    con?.close();
    const { vms: left } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
    await Promise.all(left.map((vm) => call(vms, vms.deleteVm, { vmId: vm.vmId, force: true })));
    vms.close();
    display.close();
    await agent.stop();
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  const watch = (compression: ImageCompression): Watcher => watchDisplay(display, { vmId, compression, maxFps: 60, filePixels, width: W, timeoutMs: 30_000 });
  const inSync = (w: Watcher) => () => w.decoder.pixels.length > 0 && sameBgr(w.decoder.pixels, filePixels());
  const pause = () => call(vms, vms.pauseVm, { vmId });
  const resume = () => call(vms, vms.resumeVm, { vmId });

  it("keyframe on join equals the file; after 'd' both viewers (GLZ and QUIC) decode the file's pixels", async () => {
    await pause(); // a still screen, so the keyframe must equal the file
    const glz = watch(ImageCompression.IMAGE_COMPRESSION_GLZ);
    const quic = watch(ImageCompression.IMAGE_COMPRESSION_QUIC);
    await glz.until(() => glz.updates.length > 0, "keyframe");
    await quic.until(() => quic.updates.length > 0, "keyframe");
    for (const w of [glz, quic]) {
      expect(w.updates[0].keyframe).toBe(true);
      expect([w.updates[0].width, w.updates[0].height]).toEqual([W, H]);
      expect(firstBgrDifference(w.decoder.pixels, filePixels(), W)).toBeUndefined();
    }
    const before = Uint8Array.from(glz.decoder.pixels);
    await resume();
    const mark = con.text().length;
    con.send("d");
    await con.waitFor(/drawn \d+/, 30_000, mark);
    await pause(); // the file stops changing; the last dirty pages still reach the viewers
    await glz.until(inSync(glz), "after d");
    await quic.until(inSync(quic), "after d");
    expect(sameBgr(before, glz.decoder.pixels)).toBe(false);
    expect(glz.updates.slice(1).some((u) => !u.keyframe && u.rects.length > 0)).toBe(true);
    expect(glz.updates.slice(1).flatMap((u) => u.rects).every((r) => r.width * r.height < W * H)).toBe(true);
    expect(glz.updates.slice(1).flatMap((u) => u.rects).every((r) => r.codec === Codec.CODEC_GLZ || r.codec === Codec.CODEC_RAW)).toBe(true);
    expect(quic.updates.flatMap((u) => u.rects).some((r) => r.codec === Codec.CODEC_QUIC)).toBe(true);
    glz.cancel();
    quic.cancel();
    await resume();
  });

  it("Screenshot: the PNG decodes to the framebuffer's pixels; PPM and raw match too", async () => {
    await pause();
    try {
      const file = filePixels();
      const png = await call(display, display.screenshot, { vmId, format: ScreenshotFormat.SCREENSHOT_FORMAT_PNG });
      expect([png.width, png.height, png.format]).toEqual([W, H, ScreenshotFormat.SCREENSHOT_FORMAT_PNG]);
      const img = decodePng(png.data);
      expect([img.width, img.height]).toEqual([W, H]);
      expect(firstBgrDifference(img.bgrx, file, W)).toBeUndefined();
      const raw = await call(display, display.screenshot, { vmId, format: ScreenshotFormat.SCREENSHOT_FORMAT_RAW });
      expect(Buffer.from(raw.data).equals(Buffer.from(file))).toBe(true);
      const ppm = await call(display, display.screenshot, { vmId, format: ScreenshotFormat.SCREENSHOT_FORMAT_PPM });
      const header = `P6\n${W} ${H}\n255\n`;
      expect(Buffer.from(ppm.data).subarray(0, header.length).toString()).toBe(header);
      const p = header.length + (7 * W + 5) * 3;
      expect([...ppm.data.subarray(p, p + 3)]).toEqual([file[(7 * W + 5) * 4 + 2], file[(7 * W + 5) * 4 + 1], file[(7 * W + 5) * 4]]);
    } finally {
      await resume();
    }
  });

  it("SendInput text reaches the guest (kbd lines on serial) and changes the pixels", async () => {
    const w = watch(ImageCompression.IMAGE_COMPRESSION_AUTO_GLZ);
    await w.until(() => w.updates.length > 0, "keyframe");
    const before = Uint8Array.from(filePixels());
    const mark = con.text().length;
    await call(display, display.sendInput, { vmId, events: [{ event: { $case: "text", value: "hi" } }] });
    await con.waitFor(/kbd 0x23/i, 30_000, mark); // 'h' make code
    await con.waitFor(/kbd 0x97/i, 30_000, mark); // 'i' break code
    await pause();
    try {
      await w.until(inSync(w), "after typing");
      expect(sameBgr(before, w.decoder.pixels)).toBe(false);
    } finally {
      await resume();
    }
    w.cancel();
    const bad = await callError(display, display.sendInput, { vmId, events: [{ event: { $case: "text", value: "é" } }] });
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    await call(display, display.sendInput, { vmId, events: [{ event: { $case: "pointer", value: { x: 100000, y: 5, buttons: 1 } } }] });
  });

  it("SendInput motion drives the guest's PS/2 mouse: exact packets, a large move split, bad values refused", async () => {
    const mark = con.text().length;
    const motion = (dx: number, dy: number, buttons = 0, wheel = 0) => ({ event: { $case: "motion" as const, value: { dx, dy, wheel, buttons } } });
    await call(display, display.sendInput, { vmId, events: [motion(5, -3, 1), motion(0, 0, 0), motion(300, 40, 2)] });
    await con.waitFor(/mouse \d+ \d+ 2\n(?![\s\S]*mouse \d+ \d+ 2\n)[\s\S]*$/, 30_000, mark);
    await new Promise((r) => setTimeout(r, 300));
    const lines = [...con.text().slice(mark).matchAll(/mouse (-?\d+) (-?\d+) (\d+)/g)].map((m) => m.slice(1).map(Number));
    expect(lines.slice(0, 2)).toEqual([[5, -3, 1], [0, 0, 0]]);
    const big = lines.slice(2);
    expect([big.length > 1, big.reduce((n, l) => n + l[0], 0), big.reduce((n, l) => n + l[1], 0), big.every((l) => l[2] === 2)]).toEqual([true, 300, 40, true]);
    const bad = await callError(display, display.sendInput, { vmId, events: [motion(5000, 0)] });
    expect([bad.code, bad.message]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(/motion.dx 5000 is not an integer in -4096..4096/)]);
    expect((await callError(display, display.sendInput, { vmId, events: [motion(0, 0, 8)] })).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("errors: NOT_FOUND, INVALID_ARGUMENT, tickets without a SPICE port; the stream ends cleanly when the VM stops; then FAILED_PRECONDITION", async () => {
    expect((await callError(display, display.screenshot, { vmId: "nope", format: 0 })).code).toBe(grpc.status.NOT_FOUND);
    expect((await callError(display, display.setDisplayTicket, { vmId: "nope", ticket: "abcdefgh", expiresInS: 0, onExpiry: 0 })).code).toBe(grpc.status.NOT_FOUND);
    expect((await callError(display, display.setDisplayTicket, { vmId, ticket: "short", expiresInS: 0, onExpiry: 0 })).message).toMatch(/5 characters long/);
    expect((await callError(display, display.setDisplayTicket, { vmId, ticket: "abcdefgh", expiresInS: 40_000_000, onExpiry: 0 })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await call(display, display.setDisplayTicket, { vmId, ticket: "abcdefgh", expiresInS: 0, onExpiry: 0 })).expiresAt).toBeInstanceOf(Date);
    const noSpice = await callError(display, display.getDisplayConnection, { vmId });
    expect([noSpice.code, noSpice.message]).toEqual([grpc.status.FAILED_PRECONDITION, expect.stringMatching(/--spice HOST:PORT/)]);
    const many = Array.from({ length: 1025 }, () => ({ event: { $case: "key" as const, value: { scancode: 0x1e, pressed: true } } }));
    expect((await callError(display, display.sendInput, { vmId, events: many })).code).toBe(grpc.status.INVALID_ARGUMENT);
    const w = watch(ImageCompression.IMAGE_COMPRESSION_LZ);
    await w.until(() => w.updates.length > 0, "keyframe");
    await call(vms, vms.stopVm, { vmId, force: true, timeoutMs: 0 });
    expect(await w.ended).toBe("end");
    expect((await callError(display, display.screenshot, { vmId, format: 0 })).code).toBe(grpc.status.FAILED_PRECONDITION);
    const s = display.streamDisplay({ vmId, imageCompression: 0, maxFps: 0 });
    const err = await new Promise<grpc.ServiceError>((resolve) => s.on("error", resolve));
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
  });
});
