// The console's bounded buffers: the per-attachment backlog with its drop marker, the byte queue under
// it and the scrollback, and the cap on attachments per VM.
import { describe, it, expect } from "vitest";
import { ConsoleBacklog, dropMarker, type ConsoleMessage } from "../agent/src/vm/console-backlog.js";
import { ByteQueue } from "../agent/src/vm/byte-queue.js";
import { ConsoleBuffer } from "../agent/src/vm/console.js";
import { QumraError } from "../agent/src/errors.js";

/** A transport that takes messages only when told to. */
function transport() {
  const sent: ConsoleMessage[] = [];
  const waiting: (() => void)[] = [];
  return {
    sent,
    send: (m: ConsoleMessage, taken: () => void) => {
      sent.push({ data: Buffer.from(m.data), scrollback: m.scrollback });
      waiting.push(taken);
    },
    takeAll() {
      while (waiting.length > 0) waiting.shift()!();
    },
    text: () => Buffer.concat(sent.map((m) => m.data)).toString("latin1"),
  };
}

const bytes = (n: number, from = 0) => Buffer.from(Array.from({ length: n }, (_, i) => 65 + ((from + i) % 26)));

describe("console backlog", () => {
  it("passes output straight through while the transport keeps up, in order, with no marker", () => {
    const t = transport();
    const b = new ConsoleBacklog(t.send, { capacity: 4096, inFlight: 2 });
    for (let i = 0; i < 20; i++) {
      b.push(bytes(100, i * 100));
      t.takeAll();
    }
    expect(t.text()).toBe(bytes(2000).toString("latin1"));
    expect(b.dropped).toBe(0);
    expect(b.size).toBe(0);
  });

  it("keeps at most its capacity for a reader that does not read, then sends the marker and the newest output", () => {
    const t = transport();
    const b = new ConsoleBacklog(t.send, { capacity: 4096, inFlight: 1, messageBytes: 1024 });
    for (let i = 0; i < 100; i++) b.push(bytes(1000, i * 1000));
    expect(t.sent).toHaveLength(1); // the first message, never taken
    expect(b.size).toBe(4096);
    const dropped = 100_000 - 1000 - 4096;
    expect(b.dropped).toBe(dropped);
    for (let i = 0; i < 20; i++) t.takeAll();
    expect(t.sent[1].data.toString()).toBe(dropMarker(dropped).toString());
    expect(dropMarker(dropped).toString()).toBe(`\r\n[qumra: ${dropped} bytes dropped]\r\n`);
    const after = Buffer.concat(t.sent.slice(2).map((m) => m.data));
    expect(after.equals(bytes(4096, 100_000 - 4096))).toBe(true);
    expect(t.sent.slice(2).every((m) => m.data.length <= 1024)).toBe(true);
  });

  it("keeps the scrollback flag on the scrollback's bytes and ends only when everything is taken", () => {
    const t = transport();
    const b = new ConsoleBacklog(t.send, { capacity: 1 << 16, inFlight: 1, messageBytes: 300 });
    b.push(bytes(1000), true);
    b.push(bytes(500, 1000));
    let ended = false;
    b.finish(() => (ended = true));
    expect(ended).toBe(false);
    for (let i = 0; i < 10; i++) t.takeAll();
    expect(ended).toBe(true);
    const sb = t.sent.filter((m) => m.scrollback).map((m) => m.data);
    const live = t.sent.filter((m) => !m.scrollback).map((m) => m.data);
    expect(Buffer.concat(sb).equals(bytes(1000))).toBe(true);
    expect(Buffer.concat(live).equals(bytes(500, 1000))).toBe(true);
  });

  it("sends nothing once closed", () => {
    const t = transport();
    const b = new ConsoleBacklog(t.send, { capacity: 4096, inFlight: 1 });
    b.push(bytes(10));
    b.push(bytes(10));
    b.close();
    t.takeAll();
    b.push(bytes(10));
    expect(t.sent).toHaveLength(1);
  });
});

describe("byte queue", () => {
  it("copies into blocks of its own (never a view of the caller's buffer) and cuts from the front", () => {
    const q = new ByteQueue(64);
    const source = Buffer.alloc(8192, 7);
    for (let i = 0; i < 100; i++) q.append(source.subarray(i, i + 10));
    expect(q.size).toBe(1000);
    expect(q.dropFront(995)).toBe(995);
    expect(q.size).toBe(5);
    const view = q.takeFront(100)!;
    expect(view.length).toBe(5);
    expect(view.buffer).not.toBe(source.buffer);
    expect(q.takeFront(1)).toBeUndefined();
    q.append(Buffer.from("abc"));
    expect(q.concat().toString()).toBe("abc");
  });
});

describe("console buffer", () => {
  it("keeps the last `capacity` bytes as scrollback", () => {
    const c = new ConsoleBuffer(100);
    for (let i = 0; i < 50; i++) c.push(bytes(7, i * 7));
    expect(c.scrollback().equals(bytes(100, 350 - 100))).toBe(true);
    expect(c.total).toBe(350);
  });

  it("refuses an attachment past its cap with resource-exhausted naming the flag", () => {
    const c = new ConsoleBuffer(100, 2);
    const a = c.attach(() => undefined);
    c.attach(() => undefined);
    let err: unknown;
    try {
      c.attach(() => undefined);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(QumraError);
    expect((err as QumraError).kind).toBe("resource-exhausted");
    expect((err as QumraError).message).toMatch(/2 attachments.*--max-consoles-per-vm/);
    a.detach();
    expect(() => c.attach(() => undefined)).not.toThrow();
  });
});
