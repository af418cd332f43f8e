// qumra bench spice's own parts: the SPICE wire reader on a synthetic stream (full headers) and on a
// stream recorded from Debian's qemu at test time (mini headers, real DRAW_COPYs), the counting proxy and
// the spice-gtk client against qemu, and the benchmark's qemu half, briefly. No timed assertions.
import { describe, expect, it } from "vitest";
import { clientMissing, watch } from "../bench/spice-client.js";
import { SpiceProxy } from "../bench/spice-proxy.js";
import { qemuMissing, startQemuSpice } from "../bench/spice-qemu.js";
import { runSpiceBench } from "../bench/spice.js";
import { withTeardown } from "../bench/teardown.js";
import { spiceAddressOf } from "../bench/spice-agent.js";
import {
  CHANNEL_DISPLAY, ClientLinkParser, MSG_DISPLAY_DRAW_COPY, MSG_DISPLAY_MARK, MSG_DISPLAY_SURFACE_CREATE, ServerStreamParser, type SpiceMessage,
} from "../bench/spice-wire.js";
import { LINK_MAGIC } from "../agent/src/spice/wire.js";

const missing = qemuMissing() ?? clientMissing();
if (missing) console.warn(`\n*** ${missing}: the bench spice tests that run qemu are SKIPPED ***\n`);

/** Feeds `bytes` in chunks of pseudo-random sizes 1..max (seeded), as TCP might deliver them. */
function chunked(bytes: Buffer, max: number, seed: number): Buffer[] {
  const out: Buffer[] = [];
  let s = seed;
  for (let at = 0; at < bytes.length;) {
    s = (s * 1103515245 + 12345) >>> 0;
    const n = 1 + (s % max);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

function u32s(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32LE(v >>> 0, i * 4));
  return b;
}

function linkHeader(size: number): Buffer {
  return u32s(LINK_MAGIC, 2, 2, size);
}

describe("the SPICE wire reader", () => {
  it("reads a link without the mini header cap, then full headers, in chunks of any size", () => {
    // client: connection_id, channel_type 2, channel_id 0, no caps (caps_offset just past the fixed part)
    const mess = Buffer.concat([u32s(0), Buffer.from([CHANNEL_DISPLAY, 0]), u32s(0, 0, 18)]);
    const client = new ClientLinkParser();
    const clientBytes = Buffer.concat([linkHeader(mess.length), mess, Buffer.alloc(128)]);
    let link;
    for (const c of chunked(clientBytes, 5, 1)) link = client.feed(c) ?? link;
    expect(link).toMatchObject({ channelType: CHANNEL_DISPLAY, channelId: 0, miniHeader: false });

    // server: reply (error 0, pubkey, one common cap word with MINI_HEADER set: unused, the client lacks it)
    const reply = Buffer.concat([u32s(0), Buffer.alloc(162), u32s(1, 0, 4 + 162 + 12), u32s(1 << 3)]);
    const full = (serial: number, type: number, body: Buffer) => {
      const h = Buffer.alloc(18);
      h.writeBigUInt64LE(BigInt(serial), 0);
      h.writeUInt16LE(type, 8);
      h.writeUInt32LE(body.length, 10);
      return Buffer.concat([h, body]);
    };
    const surface = u32s(0, 1024, 768, 32, 1);
    // DRAW_COPY: surface 0, box top 10 left 20 bottom 110 right 220, clip RECTS with one rect, then
    // SpiceCopy's src_bitmap offset → a descriptor of type LZ_RGB (101)
    const base = Buffer.concat([u32s(0, 10, 20, 110, 220), Buffer.from([1]), u32s(1, 10, 20, 110, 220)]);
    const imageAt = base.length + 4 + 16 + 2 + 1 + 1 + 8 + 4;
    const copy = Buffer.concat([u32s(imageAt, 0, 0, 100, 200), Buffer.from([8, 0, 0, 0]), u32s(0, 0, 0)]);
    const descriptor = Buffer.concat([Buffer.alloc(8), Buffer.from([101, 0]), u32s(200, 100)]);
    const drawBody = Buffer.concat([base, copy.subarray(0, imageAt - base.length), descriptor, Buffer.alloc(5000)]);
    const serverBytes = Buffer.concat([linkHeader(reply.length), reply, u32s(0),
      full(1, MSG_DISPLAY_SURFACE_CREATE, surface), full(2, MSG_DISPLAY_DRAW_COPY, drawBody), full(3, MSG_DISPLAY_MARK, Buffer.alloc(0))]);
    const server = new ServerStreamParser(() => link!.miniHeader);
    const messages = chunked(serverBytes, 7, 2).flatMap((c, i) => server.feed(c, i));
    expect(server.linkResult).toBe(0);
    expect(messages.map((m) => m.type)).toEqual([MSG_DISPLAY_SURFACE_CREATE, MSG_DISPLAY_DRAW_COPY, MSG_DISPLAY_MARK]);
    expect(messages[0].surface).toEqual({ id: 0, width: 1024, height: 768 });
    expect(messages[1].drawCopy).toEqual({ surfaceId: 0, box: { left: 20, top: 10, width: 200, height: 100 }, imageType: 101 });
    expect(messages[1].wireBytes).toBe(18 + drawBody.length);
    expect(messages.reduce((n, m) => n + m.wireBytes, 0)).toBe(serverBytes.length - 16 - reply.length - 4);
  });

  it("reads the listening line's spice field in the shapes the benchmark accepts", () => {
    expect(spiceAddressOf("127.0.0.1:5930")).toEqual({ host: "127.0.0.1", port: 5930 });
    expect(spiceAddressOf(["[::1]:5930"])).toEqual({ host: "::1", port: 5930 });
    expect(spiceAddressOf({ host: "127.0.0.1", port: 5931 })).toEqual({ host: "127.0.0.1", port: 5931 });
    expect(spiceAddressOf(undefined)).toBeUndefined();
  });
});

describe.skipIf(missing !== undefined)("bench spice against Debian's qemu", () => {
  it("records qemu's display stream through the proxy and reads it back the same in odd chunks", async () => {
    await withTeardown(async (teardown) => {
      const qemu = await startQemuSpice("quic", teardown);
      const proxy = new SpiceProxy({ host: "127.0.0.1", port: qemu.port }, { record: true });
      await proxy.listen();
      teardown.add("proxy", () => proxy.close());
      const client = await watch("127.0.0.1", proxy.port, undefined, teardown);
      expect(client.ready).toMatchObject({ width: 720, height: 400 });
      await client.close();
      const [display] = proxy.displays();
      const live = display.messages;
      const types = live.map((m) => m.type);
      expect(types).toContain(MSG_DISPLAY_SURFACE_CREATE);
      expect(live.find((m) => m.surface)!.surface).toMatchObject({ width: 720, height: 400 });
      const first = live.find((m) => m.drawCopy)!;
      expect(first.drawCopy).toEqual({ surfaceId: 0, box: { left: 0, top: 0, width: 720, height: 400 }, imageType: 1 }); // QUIC
      expect(types.indexOf(MSG_DISPLAY_SURFACE_CREATE)).toBeLessThan(types.indexOf(MSG_DISPLAY_DRAW_COPY));

      // The recording, read again from scratch in chunks TCP never made.
      const link = new ClientLinkParser();
      for (const c of chunked(Buffer.concat(display.recorded!.up), 3, 7)) link.feed(c);
      expect(link.link).toMatchObject({ channelType: CHANNEL_DISPLAY, miniHeader: true });
      const parser = new ServerStreamParser(() => link.link!.miniHeader);
      const again: SpiceMessage[] = chunked(Buffer.concat(display.recorded!.down), 997, 11).flatMap((c) => parser.feed(c, 0));
      expect(parser.linkResult).toBe(0);
      const shape = (m: SpiceMessage) => ({ type: m.type, size: m.size, drawCopy: m.drawCopy, surface: m.surface });
      expect(again.map(shape)).toEqual(live.map(shape));
      expect(display.bytesDown).toBe(display.recorded!.down.reduce((n, b) => n + b.length, 0));
    });
  });

  it("measures the qemu half: connect → first complete screen for quic and auto_glz", async () => {
    const result = await runSpiceBench({ width: 1920, height: 1080, codecs: ["quic"], runs: 1, vsQemu: true, qemuOnly: true, keys: 1, fullChanges: 1 }, { start() {}, increment() {}, stop() {} });
    expect(result.errors).toEqual([]);
    expect(result.first.map((r) => [r.server, r.codec, r.width, r.height])).toEqual([["qemu", "quic", 720, 400], ["qemu", "auto_glz", 720, 400]]);
    expect(result.first.map((r) => r.images)).toEqual([["quic"], ["lz_rgb"]]);
    for (const r of result.first) {
      expect(r.firstMs).toBeGreaterThan(0);
      expect(r.bytes).toBeGreaterThan(0);
    }
  });
});
