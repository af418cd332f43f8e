// Host and agent series: KVM availability (probed in the background, never on the scrape's path), VMs
// by state, degraded mode, quarantined records, admission's capacity and what it admitted, the agent.
import { Gauge, type Registry } from "prom-client";
import { probeKvm, type KvmFacts } from "../host/kvm-probe.js";
import type { VmReading } from "./vm-readings.js";
import { REPORTED_STATES } from "./vm-metrics.js";

/** A probe spawns the helper: at most one per this long, whatever the scrape rate. */
const KVM_PROBE_EVERY_MS = 30_000;
/** The first scrape waits this long for the first probe; later ones use the last answer. */
const FIRST_PROBE_WAIT_MS = 2000;

export interface HostReport {
  degraded: string;
  quarantined: number;
  admission: { maxVms: number; memoryCapacityBytes: number; memoryAdmittedBytes: number; createsInProgress: number; createsQueued: number };
  version: string;
  instanceId: string;
}

export class HostMetrics {
  private readonly kvmAvailable: Gauge;
  private readonly kvmMaxVcpus: Gauge;
  private readonly vms: Gauge<"state">;
  private readonly degraded: Gauge;
  private readonly quarantined: Gauge;
  private readonly maxVms: Gauge;
  private readonly capacity: Gauge;
  private readonly admitted: Gauge;
  private readonly creates: Gauge<"phase">;
  private readonly info: Gauge<"version" | "instance_id">;
  private kvm?: KvmFacts;
  private probing?: Promise<void>;
  private probedAt = -Infinity;

  constructor(
    registry: Registry,
    private readonly report: () => HostReport,
    private readonly probe: () => Promise<KvmFacts>,
  ) {
    const registers = [registry];
    this.kvmAvailable = new Gauge({ name: "qumra_host_kvm_available", help: "1 when /dev/kvm can run VMs (probed by the helper at most every 30 s)", registers });
    this.kvmMaxVcpus = new Gauge({ name: "qumra_host_kvm_max_vcpus", help: "KVM's most vCPUs per VM (0 when KVM is unavailable)", registers });
    this.vms = new Gauge({ name: "qumra_vms", help: "VMs this agent defines, by state", labelNames: ["state"], registers });
    this.degraded = new Gauge({ name: "qumra_agent_degraded", help: "1 when the state dir cannot be written and mutations are refused (reads still served)", registers });
    this.quarantined = new Gauge({ name: "qumra_agent_quarantined_records", help: "VM records moved to quarantine as malformed (GetHost's agent.quarantined)", registers });
    this.maxVms = new Gauge({ name: "qumra_admission_max_vms", help: "--max-vms: the most VMs defined at once", registers });
    this.capacity = new Gauge({ name: "qumra_admission_memory_capacity_bytes", help: "Memory CreateVm admits up to: MemTotal × --memory-overcommit − --memory-reserve", registers });
    this.admitted = new Gauge({ name: "qumra_admission_memory_admitted_bytes", help: "Footprints of every defined VM (guest memory + framebuffer + helper overhead)", registers });
    this.creates = new Gauge({ name: "qumra_admission_creates", help: "Creates spawning a helper now (running) or waiting their turn (queued)", labelNames: ["phase"], registers });
    this.info = new Gauge({ name: "qumra_agent_info", help: "Always 1: the agent's version and its instance id (WatchVms sequences are per instance)", labelNames: ["version", "instance_id"], registers });
  }

  static forHelper(registry: Registry, report: () => HostReport, vmmPath: string): HostMetrics {
    return new HostMetrics(registry, report, () => probeKvm(vmmPath));
  }

  async update(readings: readonly VmReading[]): Promise<void> {
    await this.kvmFacts();
    this.kvmAvailable.set(this.kvm?.available ? 1 : 0);
    this.kvmMaxVcpus.set(this.kvm?.available ? this.kvm.maxVcpus : 0);
    this.vms.reset();
    for (const state of REPORTED_STATES) this.vms.set({ state }, readings.filter((r) => r.record.state === state).length);
    const r = this.report();
    this.degraded.set(r.degraded ? 1 : 0);
    this.quarantined.set(r.quarantined);
    this.maxVms.set(r.admission.maxVms);
    this.capacity.set(r.admission.memoryCapacityBytes);
    this.admitted.set(r.admission.memoryAdmittedBytes);
    this.creates.set({ phase: "running" }, r.admission.createsInProgress);
    this.creates.set({ phase: "queued" }, r.admission.createsQueued);
    this.info.reset();
    this.info.set({ version: r.version, instance_id: r.instanceId }, 1);
  }

  /** Starts a probe when the last is old; waits for it only while there has never been an answer. */
  private async kvmFacts(): Promise<void> {
    if (!this.probing && performance.now() - this.probedAt >= KVM_PROBE_EVERY_MS) {
      this.probedAt = performance.now();
      this.probing = this.probe()
        .then((facts) => void (this.kvm = facts), () => undefined)
        .finally(() => (this.probing = undefined));
    }
    if (this.kvm || !this.probing) return;
    await Promise.race([this.probing, new Promise((resolve) => setTimeout(resolve, FIRST_PROBE_WAIT_MS).unref())]);
  }
}
