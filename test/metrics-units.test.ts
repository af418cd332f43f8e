// The metrics' parts on their own: RPC label values bounded to the role table, KVM statistic names
// sanitised and capped (vCPUs summed, max_* the largest), a display's frame rate window, the bounded
// per-VM read, and series rebuilt per scrape (a VM that is gone has none). No timing is asserted.
import { describe, it, expect } from "vitest";
import { Registry } from "prom-client";
import { labelsOf, RpcMetrics } from "../agent/src/metrics/rpc-metrics.js";
import { KvmStatsMetrics, MAX_NAMES } from "../agent/src/metrics/kvm-stats-metrics.js";
import { VmMetrics, count } from "../agent/src/metrics/vm-metrics.js";
import { readVms, type VmReadSource, type VmReading } from "../agent/src/metrics/vm-readings.js";
import { DisplayTotals } from "../agent/src/display/display-totals.js";
import { QumraError } from "../agent/src/errors.js";
import type { VmRecord, VmStatsSnapshot } from "../agent/src/vm/types.js";
import { parseExposition } from "./helpers/prometheus.js";

function record(vmId: string, state: VmRecord["state"] = "RUNNING"): VmRecord {
  return {
    vmId, requestId: "r", state, stateReason: "", createdAt: "", stateChangedAt: "", helperPid: 1, controlSocket: "", lastEventSequence: 0,
    spec: { name: `name-${vmId}`, vcpus: 2, memoryBytes: 64 << 20, boot: { kind: "demo" }, display: { width: 640, height: 480 }, labels: {} },
  };
}

function stats(vcpuKvm: Record<string, number>[], vm: Record<string, number> = {}): VmStatsSnapshot {
  return {
    uptimeMs: 1500, helperRssBytes: 4096, helperCpuUserMs: 10, helperCpuSystemMs: 20, consoleBytes: 7, kvmVmStats: vm,
    vcpus: vcpuKvm.map((kvmStats, vcpu) => ({ vcpu, exitsTotal: 10, exitsIo: 4, exitsMmio: 3, exitsHlt: 2, exitsOther: 1, kvmStats })),
  };
}

const text = async (registry: Registry) => parseExposition(await registry.metrics());

describe("RPC metrics", () => {
  it("labels only the role table's methods; any other path is service and method 'unknown'", async () => {
    expect(labelsOf("/qumra.v1.VmService/GetVm")).toEqual({ service: "qumra.v1.VmService", method: "GetVm" });
    for (const path of ["/x.Y/Z", "", "/qumra.v1.VmService/GetVm2", "/qumra.v1.VmService/", "/constructor", "/__proto__/x"]) {
      expect(labelsOf(path), path).toEqual({ service: "unknown", method: "unknown" });
    }
    const registry = new Registry();
    const rpc = new RpcMetrics(registry);
    for (let i = 0; i < 1000; i++) rpc.observe(`/made.Up${i}/M${i}`, 12, 0.001);
    rpc.observe("/qumra.v1.VmService/GetVm", 5, 0.002);
    rpc.observe("/qumra.v1.VmService/GetVm", 99, 0.002); // a code grpc-js has no name for
    const m = await text(registry);
    expect(m.find("qumra_rpc_handled_total")).toHaveLength(3);
    expect(m.value("qumra_rpc_handled_total", { service: "unknown", method: "unknown", code: "UNIMPLEMENTED" })).toBe(1000);
    expect(m.value("qumra_rpc_handled_total", { method: "GetVm", code: "NOT_FOUND" })).toBe(1);
    expect(m.value("qumra_rpc_handled_total", { method: "GetVm", code: "unknown" })).toBe(1);
  });
});

describe("KVM binary statistics", () => {
  it("one gauge family per name, vCPUs summed (max_* the largest), names sanitised, non-finite values left out", async () => {
    const registry = new Registry();
    const kvm = new KvmStatsMetrics(registry);
    const readings: VmReading[] = [{
      record: record("a"), hung: false,
      stats: stats([{ exits: 10, "Odd-Name.x": 1, max_wait: 5, bad: Number.NaN }, { exits: 32, "Odd-Name.x": 2, max_wait: 9 }], { pages_4k: 100, "1bad": 3 }),
    }];
    kvm.update(readings);
    const m = await text(registry);
    const vm = { vm_id: "a", name: "name-a" };
    expect(m.value("qumra_vm_kvm_vcpu_exits", vm)).toBe(42);
    expect(m.value("qumra_vm_kvm_vcpu_max_wait", vm)).toBe(9);
    expect(m.value("qumra_vm_kvm_vcpu_odd_name_x", vm)).toBe(3);
    expect(m.value("qumra_vm_kvm_pages_4k", vm)).toBe(100);
    expect(m.types.get("qumra_vm_kvm_vcpu_exits")).toBe("gauge");
    expect(m.find("qumra_vm_kvm_vcpu_bad")).toEqual([]);
    // A name that cannot be a metric name (it starts with a digit) is dropped and counted.
    expect(m.value("qumra_kvm_stats_dropped_names")).toBe(1);
    // Gone at the next scrape when the VM is.
    kvm.update([]);
    expect((await text(registry)).samples.filter((s) => s.labels.vm_id === "a")).toEqual([]);
  });

  it("exports at most MAX_NAMES families per level, whatever a helper names", async () => {
    const registry = new Registry();
    const kvm = new KvmStatsMetrics(registry);
    const many = Object.fromEntries(Array.from({ length: MAX_NAMES + 50 }, (_, i) => [`stat_${i}`, i]));
    for (let round = 0; round < 3; round++) kvm.update([{ record: record("a"), hung: false, stats: stats([many], many) }]);
    const m = await text(registry);
    expect(m.samples.filter((s) => s.name.startsWith("qumra_vm_kvm_vcpu_"))).toHaveLength(MAX_NAMES);
    expect(m.samples.filter((s) => s.name.startsWith("qumra_vm_kvm_") && !s.name.startsWith("qumra_vm_kvm_vcpu_"))).toHaveLength(MAX_NAMES);
    expect(m.value("qumra_kvm_stats_dropped_names")).toBe(100);
  });
});

describe("per-VM series", () => {
  it("are rebuilt at every update: states one-hot, exits by reason, a VM without stats has no helper series", async () => {
    const registry = new Registry();
    const vms = new VmMetrics(registry);
    vms.update([
      { record: record("a"), hung: false, stats: stats([{}, {}]) },
      { record: record("b", "PAUSED"), hung: true, error: "no answer within 1000 ms" },
    ]);
    let m = await text(registry);
    expect(m.find("qumra_vm_state", { vm_id: "a" }).filter((s) => s.value === 1).map((s) => s.labels.state)).toEqual(["RUNNING"]);
    expect(m.find("qumra_vm_state", { vm_id: "b" }).filter((s) => s.value === 1).map((s) => s.labels.state)).toEqual(["PAUSED"]);
    expect(m.find("qumra_vm_state", { vm_id: "a" })).toHaveLength(5); // DELETED is never a series
    expect(m.value("qumra_vm_vcpu_exits_total", { vm_id: "a", vcpu: "1", reason: "mmio" })).toBe(3);
    expect(m.value("qumra_vm_helper_cpu_seconds_total", { vm_id: "a", mode: "system" })).toBe(0.02);
    expect([m.value("qumra_vm_stats_up", { vm_id: "b" }), m.value("qumra_vm_helper_hung", { vm_id: "b" })]).toEqual([0, 1]);
    expect(m.find("qumra_vm_helper_resident_memory_bytes", { vm_id: "b" })).toEqual([]);
    vms.update([{ record: record("b", "RUNNING"), hung: false, stats: stats([{}]) }]);
    m = await text(registry);
    expect(m.samples.filter((s) => s.labels.vm_id === "a")).toEqual([]);
    expect(m.value("qumra_vm_state", { vm_id: "b", state: "RUNNING" })).toBe(1);
  });

  it("never hands prom-client a negative or non-finite counter value", () => {
    expect([count(-1), count(Number.NaN), count(Infinity), count(3)]).toEqual([0, 0, 0, 3]);
  });
});

describe("the bounded read of every VM", () => {
  it("a VM whose stats never come is read as missing within its budget, the others are read, a VM deleted meanwhile is left out", async () => {
    const source: VmReadSource = {
      list: () => [record("slow"), record("fast"), record("gone")],
      hang: (vmId) => (vmId === "slow" ? { stopped: false, reason: "unanswered", since: new Date() } : undefined),
      stats: (vmId) => {
        if (vmId === "slow") return new Promise(() => undefined);
        if (vmId === "gone") return Promise.reject(new QumraError("not-found", "no VM 'gone' on this host"));
        return Promise.resolve({ record: record(vmId), stats: stats([{}]) });
      },
    };
    const readings = await readVms(source, 50);
    expect(readings.map((r) => r.record.vmId)).toEqual(["slow", "fast"]);
    expect(readings[0]).toMatchObject({ hung: true, error: "no answer within 50 ms" });
    expect(readings[0].stats).toBeUndefined();
    expect(readings[1].stats?.consoleBytes).toBe(7);
  });
});

describe("a display's totals", () => {
  it("count updates, rects and bytes per codec, and give updates per second over the last 5 s", () => {
    let now = 100_000;
    const t = new DisplayTotals(() => now);
    const rect = (codec: "lz" | "quic", bytes: number) => ({ codec, data: Buffer.alloc(bytes) }) as never;
    for (let i = 0; i < 50; i++) {
      t.noteUpdate({ rects: [rect("lz", 10), rect("quic", 3)] });
      now += 100; // 10 updates per second for 5 s
    }
    expect(t.updates).toBe(50);
    expect([t.rects.lz, t.rects.quic, t.rects.glz, t.bytes.lz, t.bytes.quic]).toEqual([50, 50, 0, 500, 150]);
    expect(t.fps()).toBeGreaterThan(8);
    expect(t.fps()).toBeLessThanOrEqual(12.5);
    now += 60_000; // a minute without updates
    expect(t.fps()).toBe(0);
    expect(t.updates).toBe(50);
  });
});
