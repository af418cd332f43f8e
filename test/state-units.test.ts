// The pieces of crash-consistent state that need no VM: the record check, the state dir lock, the
// errno mapping of storage errors, writeAtomic's cleanup.
import { describe, it, expect, afterAll } from "vitest";
import { existsSync, readFileSync, readdirSync, readlinkSync, symlinkSync } from "node:fs";
import path from "node:path";
import { recordProblem } from "../agent/src/vm/record-schema.js";
import { lockStateDir, startTimeOf, StateLockHeld } from "../agent/src/state-lock.js";
import { storageError } from "../agent/src/vm/storage-error.js";
import { writeAtomic } from "../agent/src/vm/store.js";
import { cleanup, tempDir } from "./helpers/agent.js";

const good = {
  vmId: "vm-1",
  requestId: "r",
  spec: { name: "x", vcpus: 1, memoryBytes: 33554432, boot: { kind: "demo" }, display: { width: 1024, height: 768 }, labels: { a: "b" } },
  state: "RUNNING",
  stateReason: "",
  createdAt: "2026-01-01T00:00:00Z",
  stateChangedAt: "2026-01-01T00:00:00Z",
  helperPid: 12,
  controlSocket: "/run/qumra/vm-1/control.sock",
  lastEventSequence: 3,
};

describe("VM record check", () => {
  it("accepts what the agent writes", () => {
    expect(recordProblem(good, "vm-1")).toBeUndefined();
    expect(recordProblem({ ...good, intent: { op: "create", at: "t" } }, "vm-1")).toBeUndefined();
  });
  it.each([
    ["null", null, "null"],
    ["{}", {}, "vmId"],
    ["an array", [], "array"],
    ["a traversing id", { ...good, vmId: "../../victim" }, "folder's name"],
    ["another folder's id", good, "folder's name"],
    ["a wrong state", { ...good, state: "EXPLODED" }, "state"],
    ["a string pid", { ...good, helperPid: "12" }, "helperPid"],
    ["a relative socket", { ...good, controlSocket: "x.sock" }, "absolute"],
    ["no spec", { ...good, spec: null }, "spec"],
    ["non-string labels", { ...good, spec: { ...good.spec, labels: { a: 1 } } }, "labels"],
    ["a bad boot", { ...good, spec: { ...good.spec, boot: { kind: "flat" } } }, "boot"],
  ])("refuses %s", (_what, value, expected) => {
    const folder = _what === "another folder's id" ? "vm-2" : "vm-1";
    expect(recordProblem(value, folder)).toContain(expected);
  });
});

describe("state dir lock", () => {
  const dirs: string[] = [];
  afterAll(() => cleanup(...dirs));
  const dir = () => {
    const d = tempDir("lock");
    dirs.push(d);
    return d;
  };

  it("is held once: a second taker is refused with the holder's pid; release frees it", () => {
    const d = dir();
    const lock = lockStateDir(d);
    expect(lock.unheld).toBe("");
    expect(readlinkSync(path.join(d, "agent.lock"))).toBe(`${process.pid}:${startTimeOf(process.pid)}`);
    let refused: unknown;
    try {
      lockStateDir(d);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(StateLockHeld);
    expect((refused as StateLockHeld).holderPid).toBe(process.pid);
    lock.release();
    expect(existsSync(path.join(d, "agent.lock"))).toBe(false);
  });

  it("takes over the lock of a dead holder and of a reused pid (same pid, another start time)", () => {
    for (const stale of ["999999999:1", `${process.pid}:1`]) {
      const d = dir();
      symlinkSync(stale, path.join(d, "agent.lock"));
      const lock = lockStateDir(d);
      expect(readlinkSync(path.join(d, "agent.lock"))).toBe(`${process.pid}:${startTimeOf(process.pid)}`);
      expect(readdirSync(d)).toEqual(["agent.lock"]);
      lock.release();
    }
  });
});

describe("storage errors", () => {
  it("maps errno to kinds and names the file", () => {
    const err = (code: string) => Object.assign(new Error(code), { code });
    expect(storageError(err("ENOSPC"), "write", "/s/vm.json").kind).toBe("resource-exhausted");
    expect(storageError(err("EDQUOT"), "write", "/s/vm.json").kind).toBe("resource-exhausted");
    expect(storageError(err("EROFS"), "write", "/s/vm.json").kind).toBe("unavailable");
    expect(storageError(err("EIO"), "write", "/s/vm.json").kind).toBe("unavailable");
    expect(storageError(err("EACCES"), "write", "/s/vm.json").kind).toBe("internal");
    expect(storageError(err("ENOSPC"), "write", "/s/vm.json").message).toBe("could not write /s/vm.json: ENOSPC (the state dir's filesystem is full)");
  });

  it("writeAtomic leaves no temp file when it fails", () => {
    const d = tempDir("atomic");
    dirs2.push(d);
    writeAtomic(path.join(d, "a.json"), "1");
    expect(() => writeAtomic(path.join(d, "missing", "a.json"), "1")).toThrow(/could not write .*missing\/a\.json: ENOENT/);
    expect(readdirSync(d)).toEqual(["a.json"]);
  });
  const dirs2: string[] = [];
  afterAll(() => cleanup(...dirs2));
});

describe("helper identity", () => {
  it("a record naming a process that is not a qumra-vmm with that --control never matches (pid 1, this process)", async () => {
    const { isHelperOf } = await import("../agent/src/vm/helper-process.js");
    const { helperDirOf } = await import("../agent/src/vm/helper-scan.js");
    const init = readFileSync("/proc/1/cmdline", "utf8").split("\0")[0]!;
    expect(await isHelperOf(1, init)).toBe(false);
    expect(await isHelperOf(process.pid, process.argv[1]!)).toBe(false);
    expect(helperDirOf(1)).toBeUndefined();
    expect(helperDirOf(process.pid)).toBeUndefined();
  });
});
