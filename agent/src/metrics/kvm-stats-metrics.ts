// KVM's own binary statistics (KVM_GET_STATS_FD, read by the helper for STATS) as Prometheus series.
//
// Cardinality: one family per statistic name, labels vm_id and name only. The names are the kernel's
// (about 16 per VM and 45 per vCPU on x86 today), so the families are few and fixed per kernel; per VM
// that is ~60 series whatever its vCPU count, because the vCPU statistics are summed over its vCPUs
// (a per-vCPU label would multiply every VM's series by its vCPUs, and a fleet dashboard wants the VM).
// The sum is right for the cumulative ones (exits, pf_taken, ...), which are nearly all; the few peak
// ones (named max_*) take the largest vCPU's value instead. The helper flattens KVM's types away, so
// every family is a gauge. Names are sanitised to [a-z0-9_]; a kernel that grew past MAX_NAMES per
// level would have the rest dropped (and counted), so no kernel can make the families grow unbounded.
import { Gauge, type Registry } from "prom-client";
import type { VmReading } from "./vm-readings.js";

/** Names kept per level (VM, vCPU); today's kernels have well under half of this. */
export const MAX_NAMES = 128;

type Level = "vm" | "vcpu";
const PREFIX: Record<Level, string> = { vm: "qumra_vm_kvm_", vcpu: "qumra_vm_kvm_vcpu_" };
const HELP: Record<Level, string> = {
  vm: "KVM binary statistic of the VM (KVM_GET_STATS_FD)",
  vcpu: "KVM binary statistic of the VM's vCPUs, summed over them (max_*: the largest)",
};

export class KvmStatsMetrics {
  private readonly families = new Map<string, Gauge<"vm_id" | "name">>();
  private readonly dropped: Gauge;
  private readonly droppedNames = new Set<string>();

  constructor(private readonly registry: Registry) {
    this.dropped = new Gauge({ name: "qumra_kvm_stats_dropped_names", help: `KVM statistic names not exported: past ${MAX_NAMES} per level, or not sanitisable`, registers: [registry] });
  }

  update(readings: readonly VmReading[]): void {
    for (const g of this.families.values()) g.reset();
    for (const { record, stats } of readings) {
      if (!stats) continue;
      const vm = { vm_id: record.vmId, name: record.spec.name };
      for (const [stat, value] of Object.entries(stats.kvmVmStats)) if (Number.isFinite(value)) this.family("vm", stat)?.set(vm, value);
      const summed = new Map<string, number>();
      for (const v of stats.vcpus) {
        for (const [stat, value] of Object.entries(v.kvmStats)) {
          if (!Number.isFinite(value)) continue;
          const before = summed.get(stat);
          summed.set(stat, before === undefined ? value : stat.startsWith("max_") ? Math.max(before, value) : before + value);
        }
      }
      for (const [stat, value] of summed) this.family("vcpu", stat)?.set(vm, value);
    }
    this.dropped.set(this.droppedNames.size);
  }

  /** The family of one statistic, made at its first sight; undefined when it is not exported. */
  private family(level: Level, stat: string): Gauge<"vm_id" | "name"> | undefined {
    const key = `${level}:${stat}`;
    const known = this.families.get(key);
    if (known) return known;
    if (this.droppedNames.has(key)) return undefined;
    const clean = stat.toLowerCase().replace(/[^a-z0-9_]/g, "_");
    const perLevel = [...this.families.keys()].filter((k) => k.startsWith(`${level}:`)).length;
    if (!/^[a-z_][a-z0-9_]{0,99}$/.test(clean) || perLevel >= MAX_NAMES || this.registry.getSingleMetric(PREFIX[level] + clean)) {
      // Bounded too: at most what one kernel's (or a hostile helper's) reply can name, once.
      if (this.droppedNames.size < 4 * MAX_NAMES) this.droppedNames.add(key);
      return undefined;
    }
    const gauge = new Gauge<"vm_id" | "name">({ name: PREFIX[level] + clean, help: `${HELP[level]}: ${clean}`, labelNames: ["vm_id", "name"], registers: [this.registry] });
    this.families.set(key, gauge);
    return gauge;
  }
}
