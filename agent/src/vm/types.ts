// The VM domain: specs, records and states as the agent keeps them (no gRPC types here).
import type { ImageCompression } from "../display/types.js";
import type { VmSandbox } from "./sandbox-status.js";
import type { CONTROL_REGS, DTABLES, GP_REGS, SEGMENTS } from "../gen/helper-abi.js";

/** The register lists of the helper (generated from native/regs-list.h). */
export { GP_REGS, SEGMENTS, DTABLES } from "../gen/helper-abi.js";

// MIGRATED and DELETED are seen only in events: a VM in them is no longer on this host.
export const VM_STATES = ["CREATED", "RUNNING", "PAUSED", "STOPPED", "CRASHED", "DELETED", "MIGRATED"] as const;
export type VmState = (typeof VM_STATES)[number];

export type BootSource =
  | { kind: "demo" }
  | {
      kind: "flat";
      /** SHA-256 of the image (hex); the bytes live in the VM's state folder as image.bin. */
      imageSha256: string;
      imageBytes: number;
      loadAddress: number;
      entryAddress: number;
      mode: "long" | "protected";
    }
  | {
      kind: "linux";
      /** Paths relative to the agent's --images-dir (resolved at each start: images-dir.ts). */
      kernel: string;
      initrd?: string;
      cmdline: string;
    };

export interface VmSpec {
  name: string;
  vcpus: number;
  memoryBytes: number;
  boot: BootSource;
  display: { width: number; height: number };
  labels: Record<string, string>;
  /** How the SPICE server codes this VM's images; absent = the agent's --spice-image-compression. */
  imageCompression?: ImageCompression;
  /** The helper's cgroup cpu.weight, 1..10000 (absent in records written before it existed: 100). */
  cpuWeight?: number;
}

/** What the agent persists about a VM (one JSON file per VM). */
export interface VmRecord {
  vmId: string;
  requestId: string;
  spec: VmSpec;
  state: VmState;
  stateReason: string;
  createdAt: string;
  stateChangedAt: string;
  /** When the vCPUs were first started (ISO time), for uptime. */
  startedAt?: string;
  helperPid: number;
  /** The helper's control socket. */
  controlSocket: string;
  lastEventSequence: number;
  /** The sandbox the helper reported at its last attach (asked again on every re-attach). */
  sandbox?: VmSandbox;
  /**
   * Write-ahead: the operation in progress, written before the helper is spawned or told anything, so a
   * restarted agent knows what was interrupted (create: the helper may or may not exist yet).
   */
  intent?: VmIntent;
}

export interface VmIntent {
  op: "create" | "start" | "pause" | "resume" | "stop" | "delete" | "snapshot" | "restore" | "migrate-out" | "migrate-in";
  at: string;
  /** snapshot: the VM was running and is to run again once the snapshot is written (or abandoned). */
  resume?: boolean;
  /** snapshot, restore: the snapshot's name. */
  snapshot?: string;
  /**
   * migrate-out: the destination as given, and "commit" once the switch began (from then on the
   * destination may run the VM, so a restart never resumes it here); migrate-in: the source agent.
   */
  peer?: string;
  migrationPhase?: "copy" | "commit";
  migrationId?: string;
}

/** States in which a helper process is expected to be alive. */
export const LIVE_STATES: readonly VmState[] = ["CREATED", "RUNNING", "PAUSED"];

/** True when A and B are the same union: compile-time checks that hand-written types match the generated lists. */
export type SameUnion<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** "apic_base" → "apicBase". */
export type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

/** The general registers (the helper's list, native/regs-list.h). */
export type GpRegs = Record<(typeof GP_REGS)[number], bigint>;

/** struct kvm_segment. */
export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: boolean;
  dpl: number;
  db: boolean;
  s: boolean;
  l: boolean;
  g: boolean;
  avl: boolean;
  unusable: boolean;
}

/** struct kvm_dtable. */
export interface DescriptorTable {
  base: bigint;
  limit: number;
}

/** struct kvm_sregs without the interrupt bitmap; control registers in camel case ("apicBase"). */
export type SpecialRegs = Record<(typeof SEGMENTS)[number], Segment> &
  Record<(typeof DTABLES)[number], DescriptorTable> &
  Record<CamelCase<(typeof CONTROL_REGS)[number]>, bigint>;

export interface VcpuRegs {
  regs: GpRegs;
  sregs: SpecialRegs;
}

export interface VcpuCounters {
  vcpu: number;
  exitsTotal: number;
  exitsIo: number;
  exitsMmio: number;
  exitsHlt: number;
  exitsOther: number;
  kvmStats: Record<string, number>;
}

export interface VmStatsSnapshot {
  uptimeMs: number;
  vcpus: VcpuCounters[];
  helperRssBytes: number;
  helperCpuUserMs: number;
  helperCpuSystemMs: number;
  consoleBytes: number;
  kvmVmStats: Record<string, number>;
}
