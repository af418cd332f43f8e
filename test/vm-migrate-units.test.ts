// The live migration payloads (helper-protocol.ts) and page runs (page-runs.ts) as pure functions:
// byte layouts as PROTOCOL.md "Live migration" gives them, and what a malformed reply is.
import { describe, it, expect } from "vitest";
import {
  MsgType,
  PAGES_MAX,
  PAGE_SIZE,
  decodeDirtyLogReply,
  decodeMigrationStats,
  decodeRamDirty,
  encodeDirtyLog,
  encodeReadPages,
  encodeWritePages,
  runsBytes,
  type HelperStats,
  type RamDirtySlot,
} from "../agent/src/vm/helper-protocol.js";
import { batchRuns, dirtyCount, dirtyRuns, rangeRuns } from "../agent/src/vm/page-runs.js";

/** A RAM_DIRTY reply for slots of (gpa, pages, dirty page indexes). */
function ramDirtyReply(slots: { gpa: number; pages: number; dirty: number[] }[]): Buffer {
  const parts = [Buffer.alloc(4)];
  parts[0].writeUInt32LE(slots.length, 0);
  for (const s of slots) {
    const head = Buffer.alloc(16);
    head.writeBigUInt64LE(BigInt(s.gpa), 0);
    head.writeBigUInt64LE(BigInt(s.pages), 8);
    const words = Buffer.alloc(Math.ceil(s.pages / 64) * 8);
    for (const i of s.dirty) words[i >> 3] |= 1 << (i & 7);
    parts.push(head, words);
  }
  return Buffer.concat(parts);
}

const slot = (gpa: number, pages: number, dirty: number[]): RamDirtySlot => decodeRamDirty(ramDirtyReply([{ gpa, pages, dirty }]))[0];

describe("live migration payloads", () => {
  it("has the request types 30-33", () => {
    expect([MsgType.RAM_DIRTY_LOG, MsgType.RAM_DIRTY, MsgType.READ_PAGES, MsgType.WRITE_PAGES]).toEqual([30, 31, 32, 33]);
    expect(PAGES_MAX * PAGE_SIZE).toBe(1 << 20);
  });

  it("encodes RAM_DIRTY_LOG as a u32 and reads its reply", () => {
    expect(encodeDirtyLog(true)).toEqual(Buffer.from([1, 0, 0, 0]));
    expect(encodeDirtyLog(false)).toEqual(Buffer.from([0, 0, 0, 0]));
    expect(decodeDirtyLogReply(Buffer.from('{"enabled":true,"pages":8192}'))).toEqual({ enabled: true, pages: 8192 });
    expect(() => decodeDirtyLogReply(Buffer.from('{"enabled":1,"pages":8192}'))).toThrow(/no boolean "enabled"/);
  });

  it("decodes RAM_DIRTY's slots with their bitmaps and refuses replies that do not add up", () => {
    const reply = ramDirtyReply([{ gpa: 0, pages: 100, dirty: [0, 63, 64, 99] }, { gpa: 0x1_0000_0000, pages: 64, dirty: [5] }]);
    const slots = decodeRamDirty(reply);
    expect(slots.map((s) => [s.gpa, s.pages, s.bitmap.length])).toEqual([[0, 100, 16], [0x1_0000_0000, 64, 8]]);
    expect(dirtyCount(slots)).toBe(5);
    expect(() => decodeRamDirty(reply.subarray(0, reply.length - 1))).toThrow(/RAM_DIRTY reply/);
    expect(() => decodeRamDirty(Buffer.concat([reply, Buffer.alloc(8)]))).toThrow(/for 2 slots/);
    expect(() => decodeRamDirty(reply.subarray(0, 10))).toThrow(/inside slot 0's header/);
    expect(() => decodeRamDirty(Buffer.alloc(2))).toThrow(/of 2 bytes/);
    expect(decodeRamDirty(ramDirtyReply([]))).toEqual([]);
  });

  it("encodes READ_PAGES / WRITE_PAGES runs packed, 12 bytes each, and refuses what the wire cannot carry", () => {
    const runs = [{ gpa: 0x1_0000_2000, pages: 3 }, { gpa: 0x5000, pages: 1 }];
    const p = encodeReadPages(runs);
    expect(p.length).toBe(4 + 2 * 12);
    expect(p.readUInt32LE(0)).toBe(2);
    expect(p.readBigUInt64LE(4)).toBe(0x1_0000_2000n);
    expect(p.readUInt32LE(12)).toBe(3);
    expect(p.readBigUInt64LE(16)).toBe(0x5000n);
    expect(p.readUInt32LE(24)).toBe(1);
    const data = Buffer.alloc(runsBytes(runs), 7);
    expect(runsBytes(runs)).toBe(4 * PAGE_SIZE);
    expect(encodeWritePages(runs, data)).toEqual(Buffer.concat([p, data]));
    // The helper judges alignment, sizes and totals; only unrepresentable values stop here.
    expect(encodeReadPages([{ gpa: 0x1008, pages: 0 }]).length).toBe(16);
    expect(() => encodeReadPages([{ gpa: -4096, pages: 1 }])).toThrow(/gpa -4096/);
    expect(() => encodeReadPages([{ gpa: 0, pages: 2 ** 32 }])).toThrow(/32-bit/);
  });

  it("reads STATS devices.migration", () => {
    const migration = { dirtyLog: true, dirtyCalls: 2, dirtyPages: 9, pagesRead: 30, pagesWritten: 0 };
    const stats = { binaryStats: true, vm: {}, vcpus: [], devices: { migration } } as unknown as HelperStats;
    expect(decodeMigrationStats(stats)).toEqual(migration);
    expect(() => decodeMigrationStats({ ...stats, devices: {} })).toThrow(/devices.migration/);
  });
});

describe("page runs", () => {
  it("turns dirty bits into runs of consecutive pages, per slot, in order", () => {
    const low = slot(0, 200, [0, 1, 2, 63, 64, 65, 199]);
    const high = slot(0x1_0000_0000, 70, [69]);
    expect(dirtyRuns([low, high])).toEqual([
      { gpa: 0, pages: 3 },
      { gpa: 63 * PAGE_SIZE, pages: 3 },
      { gpa: 199 * PAGE_SIZE, pages: 1 },
      { gpa: 0x1_0000_0000 + 69 * PAGE_SIZE, pages: 1 },
    ]);
    expect(dirtyRuns([slot(0, 64, [])])).toEqual([]);
    expect(dirtyRuns([slot(0, 64, [...Array(64).keys()])])).toEqual([{ gpa: 0, pages: 64 }]);
  });

  it("turns RAM_MAP ranges into whole-page runs", () => {
    expect(rangeRuns([{ gpa: 0x1000, length: 0x3000 }, { gpa: 0x10800, length: 0x100 }, { gpa: 0x20000, length: 0 }])).toEqual([
      { gpa: 0x1000, pages: 3 },
      { gpa: 0x10000, pages: 1 },
    ]);
  });

  it("packs runs into requests of at most PAGES_MAX pages, splitting a run that does not fit", () => {
    const runs = [{ gpa: 0, pages: 200 }, { gpa: 0x100000, pages: 100 }, { gpa: 0x800000, pages: 600 }];
    const batches = batchRuns(runs);
    for (const b of batches) expect(b.reduce((n, r) => n + r.pages, 0)).toBeLessThanOrEqual(PAGES_MAX);
    expect(batches.map((b) => b.reduce((n, r) => n + r.pages, 0))).toEqual([256, 256, 256, 132]);
    expect(batches[0]).toEqual([{ gpa: 0, pages: 200 }, { gpa: 0x100000, pages: 56 }]);
    expect(batches[1][0]).toEqual({ gpa: 0x100000 + 56 * PAGE_SIZE, pages: 44 });
    // Every page once, in order.
    const pages = batches.flat().flatMap((r) => Array.from({ length: r.pages }, (_, i) => r.gpa + i * PAGE_SIZE));
    const want = runs.flatMap((r) => Array.from({ length: r.pages }, (_, i) => r.gpa + i * PAGE_SIZE));
    expect(pages).toEqual(want);
    expect(batchRuns([])).toEqual([]);
    expect(batchRuns([{ gpa: 0, pages: 5 }], 2)).toEqual([[{ gpa: 0, pages: 2 }], [{ gpa: 0x2000, pages: 2 }], [{ gpa: 0x4000, pages: 1 }]]);
  });
});
