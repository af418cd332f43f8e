// Per-VM series (labels vm_id, name), rebuilt from each scrape's readings: every family is reset and
// set again, so a deleted VM's series are simply not there at the next scrape (bounded cardinality
// without any removal bookkeeping). Counters are the helper's or the agent's own running totals, set
// absolutely; a VM restart starts them again from 0, which Prometheus' rate() reads as a reset.
import { Counter, Gauge, type Registry } from "prom-client";
import { VM_STATES } from "../vm/types.js";
import type { VmReading } from "./vm-readings.js";

const VM = ["vm_id", "name"] as const;
type VmLabel = (typeof VM)[number];

/** States a defined VM can be in (DELETED is the record's end, never a series). */
export const REPORTED_STATES = VM_STATES.filter((s) => s !== "DELETED" && s !== "MIGRATED");

export class VmMetrics {
  private readonly state: Gauge<VmLabel | "state">;
  private readonly up: Gauge<VmLabel>;
  private readonly hung: Gauge<VmLabel>;
  private readonly vcpus: Gauge<VmLabel>;
  private readonly memory: Gauge<VmLabel>;
  private readonly uptime: Gauge<VmLabel>;
  private readonly exits: Counter<VmLabel | "vcpu" | "reason">;
  private readonly rss: Gauge<VmLabel>;
  private readonly cpu: Counter<VmLabel | "mode">;
  private readonly console: Counter<VmLabel>;

  constructor(registry: Registry) {
    const gauge = <L extends string>(name: string, help: string, labels: readonly L[]) => new Gauge<L>({ name, help, labelNames: labels, registers: [registry] });
    const counter = <L extends string>(name: string, help: string, labels: readonly L[]) => new Counter<L>({ name, help, labelNames: labels, registers: [registry] });
    this.state = gauge("qumra_vm_state", `1 for the VM's current state, 0 for the others (${REPORTED_STATES.join(", ")})`, [...VM, "state"]);
    this.up = gauge("qumra_vm_stats_up", "1 when this scrape read the VM's statistics (a VM without a helper has none to read), 0 when its helper did not answer in time", VM);
    this.hung = gauge("qumra_vm_helper_hung", "1 when the VM's helper is stopped or has left a request unanswered (GetVm's health)", VM);
    this.vcpus = gauge("qumra_vm_vcpus", "vCPUs of the VM's spec", VM);
    this.memory = gauge("qumra_vm_memory_bytes", "Guest memory of the VM's spec", VM);
    this.uptime = gauge("qumra_vm_uptime_seconds", "Since the VM's vCPUs were first started (0 unless created, running or paused)", VM);
    this.exits = counter("qumra_vm_vcpu_exits_total", "vCPU exits to the helper, by vCPU and reason (io, mmio, hlt, other), since the helper started", [...VM, "vcpu", "reason"]);
    this.rss = gauge("qumra_vm_helper_resident_memory_bytes", "Resident memory of the VM's qumra-vmm process (guest memory it touched included)", VM);
    this.cpu = counter("qumra_vm_helper_cpu_seconds_total", "CPU time of the VM's qumra-vmm process, by mode (user, system)", [...VM, "mode"]);
    this.console = counter("qumra_vm_console_bytes_total", "Serial console bytes the guest wrote since the VM started", VM);
  }

  update(readings: readonly VmReading[]): void {
    for (const m of [this.state, this.up, this.hung, this.vcpus, this.memory, this.uptime, this.exits, this.rss, this.cpu, this.console]) m.reset();
    for (const { record, stats, hung } of readings) {
      const vm = { vm_id: record.vmId, name: record.spec.name };
      for (const state of REPORTED_STATES) this.state.set({ ...vm, state }, record.state === state ? 1 : 0);
      this.up.set(vm, stats ? 1 : 0);
      this.hung.set(vm, hung ? 1 : 0);
      this.vcpus.set(vm, record.spec.vcpus);
      this.memory.set(vm, record.spec.memoryBytes);
      if (!stats) continue;
      this.uptime.set(vm, stats.uptimeMs / 1000);
      for (const v of stats.vcpus) {
        const vcpu = String(v.vcpu);
        const reasons = { io: v.exitsIo, mmio: v.exitsMmio, hlt: v.exitsHlt, other: v.exitsOther };
        for (const [reason, n] of Object.entries(reasons)) this.exits.inc({ ...vm, vcpu, reason }, count(n));
      }
      this.rss.set(vm, stats.helperRssBytes);
      this.cpu.inc({ ...vm, mode: "user" }, count(stats.helperCpuUserMs / 1000));
      this.cpu.inc({ ...vm, mode: "system" }, count(stats.helperCpuSystemMs / 1000));
      this.console.inc(vm, count(stats.consoleBytes));
    }
  }
}

/** A counter's value as prom-client takes it (it throws on a negative or non-finite increment). */
export function count(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}
