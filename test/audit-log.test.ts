// The audit trail's file: order, durability boundaries, rotation, torn lines, and a disk that refuses.
import { describe, it, expect, afterEach } from "vitest";
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";
import { AuditLog, type AuditRecord } from "../agent/src/audit/audit-log.js";
import type { AuditEntry } from "../agent/src/audit/audit-entry.js";
import { createLogger } from "../agent/src/logger.js";
import { cleanup, tempDir } from "./helpers/agent.js";

const quiet = createLogger("fatal", new Writable({ write: (_c, _e, done) => done() }));
const dirs: string[] = [];
afterEach(() => cleanup(...dirs.splice(0)));

function entry(n: number, vmId = `vm-${n % 3}`): AuditEntry {
  return { identity: "CN=ctl-a", role: "operator", peer: "127.0.0.1:5000", method: "/qumra.v1.VmService/StopVm", vm_id: vmId, request_id: `r${n}`, code: "OK" };
}

function lines(file: string): AuditRecord[] {
  return readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as AuditRecord);
}

describe("audit log", () => {
  it("writes one line per entry, in the order recorded, each on disk when record() resolves, mode 0600", async () => {
    const dir = tempDir("audit");
    dirs.push(dir);
    const audit = new AuditLog({ stateDir: dir, logger: quiet });
    await audit.record(entry(0));
    expect(lines(audit.path)).toHaveLength(1);
    // Many at once share fsyncs but keep their order.
    await Promise.all(Array.from({ length: 200 }, (_, i) => audit.record(entry(i + 1))));
    const written = lines(audit.path);
    expect(written.map((r) => r.request_id)).toEqual(Array.from({ length: 201 }, (_, i) => `r${i}`));
    expect(written[0]).toMatchObject({ identity: "CN=ctl-a", role: "operator", method: "/qumra.v1.VmService/StopVm", code: "OK" });
    expect(Date.parse(written[0].time)).not.toBeNaN();
    expect(statSync(audit.path).mode & 0o777).toBe(0o600);
    expect(audit.read({ vmId: "vm-1" }).every((r) => r.vm_id === "vm-1")).toBe(true);
    expect(audit.read({ tail: 5 }).map((r) => r.request_id)).toEqual(["r196", "r197", "r198", "r199", "r200"]);
    await audit.close();
    await expect(audit.record(entry(999))).rejects.toThrow(/closed/);
  });

  it("rotates by size and keeps a bounded number of files, reading them back oldest first", async () => {
    const dir = tempDir("audit");
    dirs.push(dir);
    const audit = new AuditLog({ stateDir: dir, logger: quiet, maxBytes: 4096, maxFiles: 2 });
    for (let i = 0; i < 300; i++) await audit.record(entry(i));
    const files = readdirSync(dir).sort();
    expect(files).toEqual(["audit.log", "audit.log.1", "audit.log.2"]);
    for (const f of files) expect(statSync(path.join(dir, f)).size).toBeLessThanOrEqual(4096);
    const kept = audit.read().map((r) => Number((r.request_id ?? "").slice(1)));
    // The newest survive, in order and without gaps; the oldest were dropped.
    expect(kept.at(-1)).toBe(299);
    expect(kept[0]).toBeGreaterThan(0);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => kept[0] + i));
    await audit.close();
  });

  it("starts a fresh line after a torn one left by a crash, and reading skips the torn part", async () => {
    const dir = tempDir("audit");
    dirs.push(dir);
    appendFileSync(path.join(dir, "audit.log"), `${JSON.stringify({ time: "t", ...entry(0) })}\n{"time":"2026-12-02T10:`);
    const audit = new AuditLog({ stateDir: dir, logger: quiet });
    await audit.record(entry(1));
    expect(audit.read().map((r) => r.request_id)).toEqual(["r0", "r1"]);
    await audit.close();
  });

  it("follows: retained records first, then each new one exactly once", async () => {
    const dir = tempDir("audit");
    dirs.push(dir);
    const audit = new AuditLog({ stateDir: dir, logger: quiet });
    await audit.record(entry(0));
    const pending = audit.record(entry(1)); // in flight while the follower subscribes
    const seen: string[] = [];
    const { retained, stop } = audit.readThenFollow({}, (r) => seen.push(r.request_id!));
    await pending;
    await audit.record(entry(2));
    stop();
    await audit.record(entry(3));
    const all = [...retained.map((r) => r.request_id), ...seen];
    expect(all).toEqual(["r0", "r1", "r2"]);
    await audit.close();
  });

  it("rejects record() when the file cannot be written, and recovers when it can", async () => {
    const dir = tempDir("audit");
    dirs.push(dir);
    mkdirSync(path.join(dir, "audit.log")); // something that is not a file where the log goes
    const audit = new AuditLog({ stateDir: dir, logger: quiet });
    await expect(audit.record(entry(0))).rejects.toThrow(/EISDIR|illegal operation/);
    cleanup(path.join(dir, "audit.log"));
    await audit.record(entry(1));
    expect(existsSync(audit.path)).toBe(true);
    expect(audit.read().map((r) => r.request_id)).toEqual(["r1"]);
    await audit.close();
  });
});
