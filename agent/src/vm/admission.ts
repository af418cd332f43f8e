// Admission control: whether one more VM fits this host. Guest RAM is a memfd the guest touches
// lazily, so MemAvailable says nothing about what defined VMs will use; instead the footprint of
// every defined VM (running or not: a stopped VM can be started again without asking) plus the new
// one is held against MemTotal × overcommit − reserve, and the number of VMs against --max-vms.
import { QumraError } from "../errors.js";
import type { VmSpec } from "./types.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
/**
 * What a helper costs besides guest RAM and framebuffer: a helper's RSS measured at about 5 MiB
 * (page tables, vCPU stacks, KVM structures, its log); rounded up for headroom.
 */
export const VM_OVERHEAD_BYTES = 16 * MIB;

export interface AdmissionLimits {
  /** Most VMs defined at once. */
  maxVms: number;
  /** Factor on MemTotal (1.0: no overcommit). */
  memoryOvercommit: number;
  /** Bytes of MemTotal kept for the host itself. */
  memoryReserveBytes: number;
}

export interface AdmissionReport extends AdmissionLimits {
  /** MemTotal × overcommit − reserve. */
  memoryCapacityBytes: number;
  /** The footprint summed over defined VMs and creates in progress. */
  memoryAdmittedBytes: number;
  vmsDefined: number;
}

/** Guest RAM + framebuffer (w × h × 4) + the per-VM overhead. */
export function vmFootprint(spec: Pick<VmSpec, "memoryBytes" | "display">): number {
  return spec.memoryBytes + spec.display.width * spec.display.height * 4 + VM_OVERHEAD_BYTES;
}

/** 20.0 GiB, 512.0 MiB. */
export function formatBytes(n: number): string {
  return n >= GIB ? `${(n / GIB).toFixed(1)} GiB` : `${(n / MIB).toFixed(1)} MiB`;
}

export class Admission {
  /** Footprints of VMs being created (not yet in the defined set), by vm id. */
  private readonly pending = new Map<string, number>();

  constructor(
    readonly limits: AdmissionLimits,
    /** MemTotal in bytes. */
    private readonly memTotal: number,
  ) {}

  get capacity(): number {
    return Math.max(0, Math.floor(this.memTotal * this.limits.memoryOvercommit) - this.limits.memoryReserveBytes);
  }

  /**
   * Admits `spec` next to the `defined` VMs, or throws RESOURCE_EXHAUSTED with the numbers. The
   * admission holds until the returned release is called (when the VM is in `defined`, or failed).
   */
  admit(vmId: string, spec: VmSpec, defined: readonly VmSpec[]): () => void {
    const count = defined.length + this.pending.size;
    if (count >= this.limits.maxVms) {
      throw new QumraError("resource-exhausted", `cannot create VM '${vmId}': this host has ${count} VMs defined (stopped ones included) and --max-vms is ${this.limits.maxVms}; delete VMs or raise --max-vms`);
    }
    const admitted = this.admitted(defined);
    const needs = vmFootprint(spec);
    if (admitted + needs > this.capacity) {
      throw new QumraError(
        "resource-exhausted",
        `cannot create VM '${vmId}': it needs ${formatBytes(needs)} (memory ${formatBytes(spec.memoryBytes)} + framebuffer ${formatBytes(spec.display.width * spec.display.height * 4)} + overhead ${formatBytes(VM_OVERHEAD_BYTES)}); ` +
          `${formatBytes(admitted)} of ${formatBytes(this.capacity)} is admitted to ${count} VMs, stopped ones included ` +
          `(MemTotal ${formatBytes(this.memTotal)} × --memory-overcommit ${this.limits.memoryOvercommit} − --memory-reserve ${formatBytes(this.limits.memoryReserveBytes)}); ` +
          `raise --memory-overcommit or delete VMs`,
      );
    }
    this.pending.set(vmId, needs);
    return () => this.pending.delete(vmId);
  }

  report(defined: readonly VmSpec[]): AdmissionReport {
    return { ...this.limits, memoryCapacityBytes: this.capacity, memoryAdmittedBytes: this.admitted(defined), vmsDefined: defined.length + this.pending.size };
  }

  private admitted(defined: readonly VmSpec[]): number {
    let sum = 0;
    for (const spec of defined) sum += vmFootprint(spec);
    for (const bytes of this.pending.values()) sum += bytes;
    return sum;
  }
}
