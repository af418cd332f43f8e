// The SPICE wire codec: link messages and headers round-trip, and every client message is held to its
// channel's bound before its body is kept.
import { describe, it, expect } from "vitest";
import {
  CHANNEL, CLIENT_MESSAGE_BOUNDS, LINK_PUBKEY_BYTES, MAX_LINK_CAPS, MSGC, MessageReader, WireError, capsWords, hasCap, linkMess, linkReply, messageHeader,
  parseLinkHeader, parseLinkMess, parseLinkReply, Reader, Writer, ByteQueue,
} from "../agent/src/spice/wire.js";
import { buttonsFromSpice, keyCodeBytes } from "../agent/src/spice/inputs-channel.js";
import { decoderFor, drawCopy } from "../agent/src/spice/display-channel.js";
import { vmUuid } from "../agent/src/spice/main-channel.js";

const frame = (mini: boolean, type: number, body: Buffer) => Buffer.concat([messageHeader(mini, 7n, type, body.length), body]);

describe("SPICE wire codec", () => {
  it("round-trips a link message with caps, and the link reply", () => {
    const m = { connectionId: 0xdeadbeef, channelType: CHANNEL.display, channelId: 0, commonCaps: [0xd], channelCaps: [0x3bf, 1] };
    const bytes = linkMess(m);
    expect(bytes.length).toBe(18 + 12);
    expect(parseLinkMess(bytes)).toEqual(m);
    const key = Buffer.alloc(LINK_PUBKEY_BYTES, 0x5a);
    const reply = linkReply(0, key, [0xb], [2]);
    const header = parseLinkHeader(reply.subarray(0, 16));
    expect(header).toEqual({ magic: 0x51444552, major: 2, minor: 2, size: 178 + 8 });
    expect(parseLinkReply(reply.subarray(16))).toEqual({ error: 0, publicKeyDer: key, commonCaps: [0xb], channelCaps: [2] });
  });

  it("rejects link messages whose caps lie outside them or are too many", () => {
    const good = linkMess({ connectionId: 0, channelType: 1, channelId: 0, commonCaps: [1], channelCaps: [] });
    expect(() => parseLinkMess(good.subarray(0, 20))).toThrow(WireError);
    const tooMany = Buffer.from(good);
    tooMany.writeUInt32LE(MAX_LINK_CAPS + 1, 6);
    expect(() => parseLinkMess(tooMany)).toThrow(/caps \(at most 1024 each\)/);
    const badOffset = Buffer.from(good);
    badOffset.writeUInt32LE(4, 14);
    expect(() => parseLinkMess(badOffset)).toThrow(/outside/);
    expect(() => parseLinkMess(Buffer.alloc(10))).toThrow(/too short/);
  });

  it("caps words: bit n of word n>>5", () => {
    expect(capsWords([0, 1, 3])).toEqual([0xb]);
    expect(capsWords([33])).toEqual([0, 2]);
    expect(hasCap([0xb], 3)).toBe(true);
    expect(hasCap([0xb], 2)).toBe(false);
    expect(hasCap([], 40)).toBe(false);
  });

  it("splits mini- and full-header streams into messages, byte by byte", () => {
    for (const mini of [true, false]) {
      const r = new MessageReader(CHANNEL.inputs, mini);
      const stream = Buffer.concat([frame(mini, MSGC.INPUTS_KEY_DOWN, Buffer.from([0x1e, 0, 0, 0])), frame(mini, MSGC.ACK, Buffer.alloc(0)), frame(mini, MSGC.INPUTS_MOUSE_POSITION, Buffer.alloc(11, 1))]);
      const got = [...stream].flatMap((b) => r.push(Buffer.from([b])));
      expect(got.map((m) => [m.type, m.body.length])).toEqual([[101, 4], [2, 0], [112, 11]]);
      expect(r.buffered).toBe(0);
    }
  });

  it("drops a message over its bound, or of an unknown type, from its header alone", () => {
    const r = new MessageReader(CHANNEL.display, true);
    // Only the 6-byte header is given: the verdict comes before any body byte.
    expect(() => r.push(messageHeader(true, 0n, MSGC.DISPLAY_INIT, 15))).toThrow(/15 bytes, over its bound of 14/);
    expect(() => new MessageReader(CHANNEL.display, true).push(messageHeader(true, 0n, 999, 0))).toThrow(/unknown message type 999 on the display channel/);
    expect(() => new MessageReader(CHANNEL.main, false).push(messageHeader(false, 0n, MSGC.MAIN_ATTACH_CHANNELS, 0xffffffff))).toThrow(/over its bound of 0/);
    // Key codes are inputs messages, not main ones.
    expect(() => new MessageReader(CHANNEL.main, true).push(messageHeader(true, 0n, MSGC.INPUTS_MOUSE_POSITION, 11))).toThrow(/unknown message type 112 on the main channel/);
    const sub = Buffer.from(messageHeader(false, 0n, MSGC.ACK, 0));
    sub.writeUInt32LE(1, 14);
    expect(() => new MessageReader(CHANNEL.cursor, false).push(sub)).toThrow(/sub-message list/);
  });

  it("every bound is small, so a channel holds at most one small message", () => {
    for (const table of Object.values(CLIENT_MESSAGE_BOUNDS)) for (const bound of Object.values(table)) expect(bound).toBeLessThanOrEqual(256);
  });

  it("reader and writer: little-endian fields, short bodies are a WireError", () => {
    const body = new Writer(15).u8(1).u16(0x0203).u32(0x04050607).u64(0x08090a0b0c0d0e0fn).done();
    const r = new Reader(body, "test");
    expect([r.u8(), r.u16(), r.u32(), r.u64()]).toEqual([1, 0x0203, 0x04050607, 0x08090a0b0c0d0e0fn]);
    expect(() => r.u8()).toThrow(/test: 15 bytes is too short/);
    expect(() => new Writer(4).u16(1).done()).toThrow(/wrote 2 of 4/);
  });

  it("byte queue takes pieces across chunks", () => {
    const q = new ByteQueue();
    q.push(Buffer.from([1, 2]));
    q.push(Buffer.from([3, 4, 5]));
    expect([...q.take(3)]).toEqual([1, 2, 3]);
    expect([...q.take(2)]).toEqual([4, 5]);
    expect(() => q.take(1)).toThrow();
  });

  it("byte queue peeks without taking and skips across chunks", () => {
    const q = new ByteQueue();
    for (const chunk of [[1], [2, 3], [4, 5, 6], [7]]) q.push(Buffer.from(chunk));
    expect([...q.peek(4)]).toEqual([1, 2, 3, 4]);
    expect(q.length).toBe(7);
    q.skip(5);
    expect([q.length, ...q.take(2)]).toEqual([2, 6, 7]);
    expect(() => q.skip(1)).toThrow();
    expect(() => q.peek(1)).toThrow();
  });
});

describe("SPICE message contents", () => {
  it("key codes: set-1 bytes packed little-endian, a zero byte ends them", () => {
    expect(keyCodeBytes(0x1e)).toEqual([0x1e]);
    expect(keyCodeBytes(0x9e)).toEqual([0x9e]);
    expect(keyCodeBytes(0x48e0)).toEqual([0xe0, 0x48]);
    expect(keyCodeBytes(0xc8e0)).toEqual([0xe0, 0xc8]);
    expect(keyCodeBytes(0x00450000)).toEqual([]);
  });

  it("buttons: SPICE left 1, middle 2, right 4 → qumra bit 0 left, 1 right, 2 middle", () => {
    expect([1, 2, 4, 7, 8].map(buttonsFromSpice)).toEqual([1, 4, 2, 7, 0]);
  });

  it("a zero GLZ window (spice-html5) means no GLZ", () => {
    expect(decoderFor(0)).toEqual({ codecs: ["raw", "quic", "lz"], glzWindowPixels: 0 });
    expect(decoderFor(-5).codecs).not.toContain("glz");
    expect(decoderFor(3145728)).toEqual({ codecs: ["raw", "quic", "lz", "glz"], glzWindowPixels: 3145728 });
    expect(decoderFor(1 << 30).glzWindowPixels).toBe(16_777_216);
  });

  it("DRAW_COPY puts the image at offset 57: descriptor, then BITMAP or binary-data header", () => {
    const data = Buffer.alloc(2 * 3 * 4, 9);
    const [head, pixels] = drawCopy({ x: 5, y: 6, width: 2, height: 3, codec: "raw", imageType: "rgb32", data, glzImageId: 0 }, 42n);
    expect(pixels).toBe(data);
    expect(head.length).toBe(57 + 18 + 18);
    expect([head.readInt32LE(4), head.readInt32LE(8), head.readInt32LE(12), head.readInt32LE(16)]).toEqual([6, 5, 9, 7]);
    expect(head.readUInt32LE(21)).toBe(57);
    expect(head.readUInt16LE(41)).toBe(8);
    expect(head.readBigUInt64LE(57)).toBe(42n);
    expect([head[65], head.readUInt32LE(67), head.readUInt32LE(71)]).toEqual([0, 2, 3]);
    expect([head[75], head[76], head.readUInt32LE(77), head.readUInt32LE(81), head.readUInt32LE(85), head.readUInt32LE(89)]).toEqual([8, 4, 2, 3, 8, 0]);
    const [lz] = drawCopy({ x: 0, y: 0, width: 2, height: 3, codec: "glz", imageType: "rgb32", data: Buffer.alloc(10), glzImageId: 3 }, 1n);
    expect([lz.length, lz[65], lz.readUInt32LE(75)]).toEqual([57 + 18 + 4, 102, 10]);
  });

  it("the VM's UUID is stable and version 5", () => {
    expect(vmUuid("a").equals(vmUuid("a"))).toBe(true);
    expect(vmUuid("a").equals(vmUuid("b"))).toBe(false);
    expect(vmUuid("a")[6] >> 4).toBe(5);
  });
});
