// The pure parts of admission: footprints, the sums and their messages, the create gate's bound,
// --memory-reserve parsing, cgroup limits of a spec, finding the cgroup2 mount.
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { Admission, VM_OVERHEAD_BYTES, formatBytes, vmFootprint } from "../agent/src/vm/admission.js";
import { CreateGate } from "../agent/src/vm/create-gate.js";
import { cgroupLimitsOf, findCgroup2Mount, HELPER_EXTRA_TASKS } from "../agent/src/vm/cgroups.js";
import { parseReserve, ConfigError, loadConfig, type AgentConfig } from "../agent/src/config.js";
import type { VmSpec } from "../agent/src/vm/types.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const spec = (memoryBytes: number, width = 1024, height = 768, extra: Partial<VmSpec> = {}): VmSpec => ({
  name: "x",
  vcpus: 1,
  memoryBytes,
  boot: { kind: "demo" },
  display: { width, height },
  labels: {},
  ...extra,
});

describe("admission", () => {
  it("a VM's footprint is guest memory + framebuffer (w×h×4) + the per-VM overhead", () => {
    expect(vmFootprint(spec(64 * MIB, 1024, 768))).toBe(64 * MIB + 1024 * 768 * 4 + VM_OVERHEAD_BYTES);
    expect(VM_OVERHEAD_BYTES).toBe(16 * MIB);
  });

  it("the issue's case: five 20 GiB VMs on a 23.5 GiB host: the second is refused, with the numbers", () => {
    const admission = new Admission({ maxVms: 64, memoryOvercommit: 1.0, memoryReserveBytes: GIB }, 23.5 * GIB);
    const defined: VmSpec[] = [];
    const results: string[] = [];
    for (let i = 0; i < 5; i++) {
      const s = spec(20 * GIB);
      try {
        admission.admit(`vm${i}`, s, defined)();
        defined.push(s);
        results.push("ok");
      } catch (err) {
        results.push((err as Error).message);
      }
    }
    expect(results[0]).toBe("ok");
    expect(results[1]).toBe(
      "cannot create VM 'vm1': it needs 20.0 GiB (memory 20.0 GiB + framebuffer 3.0 MiB + overhead 16.0 MiB); 20.0 GiB of 22.5 GiB is admitted to 1 VMs, stopped ones included (MemTotal 23.5 GiB × --memory-overcommit 1 − --memory-reserve 1.0 GiB); raise --memory-overcommit or delete VMs",
    );
    expect(defined).toHaveLength(1);
    // With overcommit the operator admits more on purpose.
    const over = new Admission({ maxVms: 64, memoryOvercommit: 4.5, memoryReserveBytes: GIB }, 23.5 * GIB);
    const many: VmSpec[] = [];
    for (let i = 0; i < 5; i++) over.admit(`vm${i}`, spec(20 * GIB), many)(), many.push(spec(20 * GIB));
    expect(() => over.admit("vm5", spec(20 * GIB), many)).toThrow(/it needs 20\.0 GiB.*100\.1 GiB of 104\.8 GiB is admitted to 5 VMs/);
  });

  it("creates in progress count until released, so concurrent creates cannot all pass", () => {
    const admission = new Admission({ maxVms: 64, memoryOvercommit: 1, memoryReserveBytes: 0 }, 3 * vmFootprint(spec(100 * MIB)));
    const releases = [admission.admit("a", spec(100 * MIB), []), admission.admit("b", spec(100 * MIB), []), admission.admit("c", spec(100 * MIB), [])];
    expect(() => admission.admit("d", spec(100 * MIB), [])).toThrow(expect.objectContaining({ kind: "resource-exhausted" }));
    expect(admission.report([]).vmsDefined).toBe(3);
    releases[0]();
    expect(admission.admit("d", spec(100 * MIB), [])).toBeTypeOf("function");
  });

  it("--max-vms counts defined VMs and creates in progress", () => {
    const admission = new Admission({ maxVms: 2, memoryOvercommit: 1, memoryReserveBytes: 0 }, 100 * GIB);
    admission.admit("a", spec(MIB), [spec(MIB)]);
    expect(() => admission.admit("b", spec(MIB), [spec(MIB)])).toThrow("cannot create VM 'b': this host has 2 VMs defined (stopped ones included) and --max-vms is 2; delete VMs or raise --max-vms");
  });

  it("formats sizes as GiB or MiB with one decimal", () => {
    expect(formatBytes(20 * GIB)).toBe("20.0 GiB");
    expect(formatBytes(48.2 * MIB)).toBe("48.2 MiB");
  });
});

describe("the create gate", () => {
  it("runs at most N at once, queues M, refuses beyond with RESOURCE_EXHAUSTED, and hands slots on in order", async () => {
    const gate = new CreateGate(2, 3);
    const opens: (() => void)[] = [];
    const started: number[] = [];
    const op = (i: number) => () => new Promise<number>((resolve) => (started.push(i), opens.push(() => resolve(i))));
    const runs = Array.from({ length: 7 }, (_, i) => gate.run(op(i)));
    const settled = runs.map((p) => p.then((v) => `ok ${v}`, (e: Error & { kind?: string }) => `${e.kind}: ${e.message}`));
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    expect([gate.inProgress, gate.queued]).toEqual([2, 3]);
    expect(await settled[5]).toBe("resource-exhausted: too many creates in progress (2 running, 3 waiting); retry later");
    while (opens.length) {
      opens.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    expect(await Promise.all(settled.slice(0, 5))).toEqual(["ok 0", "ok 1", "ok 2", "ok 3", "ok 4"]);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect([gate.inProgress, gate.queued]).toEqual([0, 0]);
  });

  it("a failed create frees its slot", async () => {
    const gate = new CreateGate(1, 0);
    await expect(gate.run(() => Promise.reject(new Error("spawn failed")))).rejects.toThrow("spawn failed");
    expect(await gate.run(async () => "next")).toBe("next");
  });
});

describe("--memory-reserve", () => {
  it("defaults to 10% of MemTotal, at most 1 GiB", () => {
    expect(parseReserve(undefined, 4 * GIB)).toBe(Math.floor((4 * GIB) / 10));
    expect(parseReserve(undefined, 64 * GIB)).toBe(GIB);
  });
  it("takes bytes, K/M/G/T suffixes and percentages", () => {
    expect(parseReserve("0", GIB)).toBe(0);
    expect(parseReserve("512M", GIB)).toBe(512 * MIB);
    expect(parseReserve("2GiB", GIB)).toBe(2 * GIB);
    expect(parseReserve("1.5g", GIB)).toBe(1.5 * GIB);
    expect(parseReserve("5%", 100 * GIB)).toBe(5 * GIB);
  });
  it("refuses anything else with the accepted forms", () => {
    expect(() => parseReserve("lots", GIB)).toThrow(ConfigError);
    expect(() => parseReserve("lots", GIB)).toThrow("--memory-reserve lots: expected bytes (e.g. 1073741824, 512M, 2G) or a percentage of MemTotal (e.g. 5%)");
    expect(() => parseReserve("100%", GIB)).toThrow("--memory-reserve 100%: a percentage of MemTotal below 100");
  });
});

describe("cgroup limits", () => {
  it("memory.max is the VM's footprint, pids.max its vCPUs + a few, cpu.weight its spec's (100 when absent)", () => {
    const s = spec(64 * MIB, 640, 480, { vcpus: 3, cpuWeight: 500 });
    expect(cgroupLimitsOf(s)).toEqual({ memoryMax: vmFootprint(s), pidsMax: 3 + HELPER_EXTRA_TASKS, cpuWeight: 500 });
    expect(cgroupLimitsOf(spec(64 * MIB)).cpuWeight).toBe(100);
  });

  it("finds cgroup2 at /sys/fs/cgroup on a unified host and /sys/fs/cgroup/unified on a hybrid one", () => {
    const unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    const hybrid = [
      "31 23 0:27 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755",
      "32 31 0:28 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw",
      "33 31 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory",
    ].join("\n");
    expect(findCgroup2Mount(unified)).toBe("/sys/fs/cgroup");
    expect(findCgroup2Mount(hybrid)).toBe("/sys/fs/cgroup/unified");
    expect(findCgroup2Mount("33 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")).toBeUndefined();
    // And this host's own mount table parses.
    const here = findCgroup2Mount(readFileSync("/proc/self/mountinfo", "utf8"));
    if (here) expect(readFileSync(`${here}/cgroup.controllers`, "utf8")).toBeTypeOf("string");
  });
});

describe("admission and cgroup flags", () => {
  const load = (...argv: string[]) => loadConfig(["--state-dir", "/nonexistent/s", ...argv], {}) as AgentConfig;

  it("defaults: 64 VMs, overcommit 1.0, reserve 10% of MemTotal at most 1 GiB, cgroups auto under qumra.slice", () => {
    const c = load();
    expect(c.admission.maxVms).toBe(64);
    expect(c.admission.memoryOvercommit).toBe(1);
    expect(c.admission.memoryReserveBytes).toBeLessThanOrEqual(GIB);
    expect(c.cgroups).toEqual({ enabled: true, parent: "qumra.slice" });
  });

  it("flags and QUMRA_* variables set them", () => {
    const c = load("--max-vms", "5", "--memory-overcommit", "1.5", "--memory-reserve", "2G", "--cgroups", "off", "--cgroup-parent", "a/b.slice");
    expect(c.admission).toEqual({ maxVms: 5, memoryOvercommit: 1.5, memoryReserveBytes: 2 * GIB });
    expect(c.cgroups).toEqual({ enabled: false, parent: "a/b.slice" });
    expect((loadConfig([], { QUMRA_MAX_VMS: "7", QUMRA_STATE_DIR: "/nonexistent/s" }) as AgentConfig).admission.maxVms).toBe(7);
  });

  it("refuses bad values, saying what is accepted", () => {
    expect(() => load("--max-vms", "0")).toThrow("--max-vms 0: expected a whole number from 1 to 10000");
    expect(() => load("--memory-overcommit=0")).toThrow("--memory-overcommit 0: expected a factor above 0 and at most 100, e.g. 1.0 (none) or 1.5");
    expect(() => load("--cgroups", "yes")).toThrow("--cgroups yes: expected auto or off");
    expect(() => load("--cgroup-parent", "../etc")).toThrow(/^--cgroup-parent \.\.\/etc: expected a cgroup path/);
  });
});
