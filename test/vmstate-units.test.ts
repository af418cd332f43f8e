// The agent's side of VM state and snapshots without KVM: the state ops' payloads, the state blob's
// header, CPU feature checks, snapshot names, manifests and the sparse memory writer.
import { describe, it, expect, afterAll } from "vitest";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { crc32 } from "node:zlib";
import { decodeLoadStateReply, decodeRamChecksum, decodeRamMap, decodeStateChunk, encodeLoadState, encodeSaveState } from "../agent/src/vm/helper-protocol.js";
import { missingCpuFeatures, parseStateHeader, STATE_HEADER_SIZE } from "../agent/src/vm/state-blob.js";
import { SnapshotStore, gpaOfRamOffset, manifestProblem, ramOffsetOf, validateSnapshotName, type SnapshotManifest } from "../agent/src/vm/snapshot-store.js";

const dirs: string[] = [];
const temp = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), "qumra-vmstate-"));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function header(total = STATE_HEADER_SIZE, version = 1): Buffer {
  const b = Buffer.alloc(total);
  b.write("QVMSTATE", 0, "latin1");
  b.writeUInt32LE(version, 8);
  b.writeUInt32LE(STATE_HEADER_SIZE, 12);
  b.writeUInt32LE(2, 16);
  b.writeBigUInt64LE(32n << 20n, 24);
  b.writeUInt32LE(640, 32);
  b.writeUInt32LE(480, 36);
  for (let i = 0; i < 8; i++) b.writeUInt32LE(0x100 + i, 40 + 4 * i);
  b.writeBigUInt64LE(BigInt(total), 80);
  b.writeUInt32LE(crc32(b.subarray(0, 92)), 92);
  return b;
}

describe("state op payloads", () => {
  it("encodes SAVE_STATE and LOAD_STATE and reads their replies, refusing malformed ones", () => {
    expect(encodeSaveState(5, 100)).toEqual(Buffer.from([5, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0]));
    const chunk = Buffer.concat([Buffer.from([10, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("abc")]);
    expect(decodeStateChunk(chunk)).toMatchObject({ total: 10, offset: 4 });
    expect(decodeStateChunk(chunk).bytes.toString()).toBe("abc");
    expect(() => decodeStateChunk(Buffer.alloc(15))).toThrow(/SAVE_STATE reply/);
    const past = Buffer.from(chunk);
    past[8] = 9;
    expect(() => decodeStateChunk(past)).toThrow(/past its total/);
    const load = encodeLoadState(100, 16, Buffer.from("xy"));
    expect(load.readBigUInt64LE(0)).toBe(100n);
    expect(load.readBigUInt64LE(8)).toBe(16n);
    expect(load.subarray(16).toString()).toBe("xy");
    expect(decodeLoadStateReply(Buffer.from('{"received":2,"total":3,"loaded":false}'))).toEqual({ received: 2, total: 3, loaded: false });
    expect(() => decodeLoadStateReply(Buffer.from('{"received":2}'))).toThrow(/loaded/);
  });

  it("reads RAM_MAP and RAM_CHECKSUM replies", () => {
    const map = Buffer.alloc(8 + 32);
    map.writeUInt32LE(2, 0);
    map.writeUInt32LE(1, 4);
    map.writeBigUInt64LE(0x1000n, 8);
    map.writeBigUInt64LE(0x2000n, 16);
    map.writeBigUInt64LE(0x1_0000_0000n, 24);
    map.writeBigUInt64LE(0x1000n, 32);
    expect(decodeRamMap(map)).toEqual({ ranges: [{ gpa: 0x1000, length: 0x2000 }, { gpa: 0x1_0000_0000, length: 0x1000 }], more: true });
    expect(() => decodeRamMap(map.subarray(0, 30))).toThrow(/for 2 ranges/);
    expect(decodeRamChecksum(Buffer.from('{"algorithm":"crc32","crc32":"0xdeadbeef","bytes":4096,"dataBytes":0}'))).toEqual({ algorithm: "crc32", crc32: 0xdeadbeef, bytes: 4096, dataBytes: 0 });
    expect(() => decodeRamChecksum(Buffer.from('{"algorithm":"crc32","crc32":"12","bytes":1,"dataBytes":0}'))).toThrow(/bad crc32/);
  });
});

describe("the state blob's header", () => {
  it("reads a good one and says what is wrong with a bad one", () => {
    const h = parseStateHeader(header(200));
    expect(h).toMatchObject({ version: 1, vcpus: 2, memoryBytes: 32 << 20, fbWidth: 640, fbHeight: 480, total: 200 });
    expect(parseStateHeader(Buffer.alloc(10))).toEqual({ problem: expect.stringMatching(/truncated/) });
    const magic = header();
    magic[0] = 0x41;
    expect(parseStateHeader(magic)).toEqual({ problem: expect.stringMatching(/bad magic/) });
    expect(parseStateHeader(header(STATE_HEADER_SIZE, 3))).toEqual({ problem: expect.stringMatching(/format version 3/) });
    const corrupt = header();
    corrupt[20] ^= 1;
    expect(parseStateHeader(corrupt)).toEqual({ problem: expect.stringMatching(/checksum/) });
    expect(parseStateHeader(header(200).subarray(0, 150))).toEqual({ problem: expect.stringMatching(/150 bytes but its header says 200 \(truncated\)/) });
  });

  it("names the CPU feature bits a host lacks", () => {
    const host = [0xffffffff, 0xffffffff, 0xffffffdf, 0, 0, 0, 0, 7];
    expect(missingCpuFeatures([1, 1, 0x20, 0, 0, 0, 0, 7], host)).toEqual(["CPUID.07H:EBX bits 0x00000020"]);
    expect(missingCpuFeatures([0, 0, 0, 0, 0, 0, 0, 0xe7], host)).toEqual(["CPUID.0DH:EAX (XCR0) bits 0x000000e0"]);
    expect(missingCpuFeatures([1, 2, 3, 0, 0, 0, 0, 1], host)).toEqual([]);
  });
});

describe("snapshot files", () => {
  it("accepts only plain names", () => {
    for (const ok of ["a", "nightly-2026.12.02", "A_b-c.d", "x".repeat(63)]) expect(() => validateSnapshotName(ok)).not.toThrow();
    for (const bad of ["", ".", "..", ".hidden", "../x", "a/b", "x".repeat(64), "sp ace", "nul\0"]) expect(() => validateSnapshotName(bad)).toThrow(/snapshot_name/);
  });

  it("maps RAM file offsets to guest-physical addresses around the hole", () => {
    expect(ramOffsetOf(0x1000)).toBe(0x1000);
    expect(ramOffsetOf(0x1_0000_0000)).toBe(0xc000_0000);
    expect(gpaOfRamOffset(0xc000_0000 + 0x2000)).toBe(0x1_0000_2000);
    expect(gpaOfRamOffset(ramOffsetOf(0x1_2345_6000))).toBe(0x1_2345_6000);
  });

  it("writes memory sparsely with its CRC-32, commits atomically, lists, verifies and deletes", () => {
    const store = new SnapshotStore(temp());
    const w = store.begin("one");
    const size = 8 << 20;
    w.openMemory(size);
    const data = Buffer.alloc(256 << 10);
    data.fill(7, 0, 4096); // one page of data, then zeros: only the first 64 KiB piece is written
    w.writeMemory(1 << 20, data);
    const page = Buffer.alloc(4096, 9);
    w.writeMemory(5 << 20, page);
    expect(() => w.writeMemory(0, page)).toThrow(/out of order/);
    const whole = Buffer.alloc(size);
    data.copy(whole, 1 << 20);
    page.copy(whole, 5 << 20);
    expect(w.memoryCrc()).toBe(crc32(whole) >>> 0);
    expect(store.list()).toEqual([]); // nothing listed before the commit
    const manifest: SnapshotManifest = {
      manifestVersion: 1, name: "one", stateFormat: 1, createdAt: new Date().toISOString(), sourceVmId: "src",
      spec: { name: "src", vcpus: 1, memoryBytes: size, boot: { kind: "demo" }, display: { width: 640, height: 480 }, labels: {} },
      wasRunning: false, cpuFeatures: [0, 0, 0, 0, 0, 0, 0, 0],
      memory: { file: "memory.bin", bytes: size, dataBytes: w.dataBytes, crc32: w.memoryCrc() },
      state: w.writeFile("state.bin", header()),
      console: w.writeFile("console.bin", Buffer.from("hello\n")),
    };
    expect(manifestProblem(manifest, "one")).toBeUndefined();
    w.commit(manifest);
    const mem = statSync(path.join(store.dir("one"), "memory.bin"));
    expect(mem.size).toBe(size);
    expect(mem.blocks * 512).toBeLessThanOrEqual(256 << 10); // sparse: two small pieces written
    expect(readFileSync(path.join(store.dir("one"), "memory.bin")).equals(whole)).toBe(true);
    expect(store.list().map((s) => s.manifest.name)).toEqual(["one"]);
    const v = store.verify("one", store.manifest("one"));
    expect(v.console.toString()).toBe("hello\n");
    store.delete("one");
    expect(store.list()).toEqual([]);
    expect(() => store.delete("one")).toThrow(/no snapshot 'one'/);
  });

  it("an abandoned writer leaves nothing; cleanTemp removes what a crash left", () => {
    const root = temp();
    const store = new SnapshotStore(root);
    store.begin("gone").abort();
    store.begin("crashed"); // never committed nor aborted: a crash
    expect(store.list()).toEqual([]);
    const removed: string[] = [];
    store.cleanTemp((d) => removed.push(path.basename(d)));
    expect(removed).toHaveLength(1);
    expect(removed[0]).toMatch(/^\.tmp-crashed-/);
  });

  it("refuses manifests that are not what the agent writes", () => {
    const good = {
      manifestVersion: 1, name: "n", stateFormat: 1, createdAt: "t", sourceVmId: "s", wasRunning: true, cpuFeatures: [0, 0, 0, 0, 0, 0, 0, 0],
      spec: { name: "s", vcpus: 1, memoryBytes: 4096, boot: { kind: "demo" }, display: { width: 64, height: 64 }, labels: {} },
      memory: { file: "memory.bin", bytes: 4096, dataBytes: 0, crc32: 0 },
      state: { file: "state.bin", bytes: 1, sha256: "0".repeat(64) },
      console: { file: "console.bin", bytes: 0, sha256: "0".repeat(64) },
    };
    expect(manifestProblem(good, "n")).toBeUndefined();
    expect(manifestProblem(good, "other")).toMatch(/not its folder/);
    expect(manifestProblem(null, "n")).toMatch(/not a JSON object/);
    expect(manifestProblem({ ...good, manifestVersion: 2 }, "n")).toMatch(/manifest version 2/);
    expect(manifestProblem({ ...good, state: { ...good.state, file: "../../etc/passwd" } }, "n")).toMatch(/manifest state/);
    expect(manifestProblem({ ...good, memory: { ...good.memory, bytes: 8192 } }, "n")).toMatch(/spec says 4096/);
    expect(manifestProblem({ ...good, cpuFeatures: [1] }, "n")).toMatch(/cpuFeatures/);
    expect(manifestProblem({ ...good, spec: { ...good.spec, vcpus: 0 } }, "n")).toMatch(/spec.vcpus/);
    expect(manifestProblem({ ...good, spec: { ...good.spec, boot: { kind: "flat", imageSha256: "x", imageBytes: 1, loadAddress: 0, entryAddress: 0, mode: "long" } } }, "n")).toMatch(/no image/);
  });
});
