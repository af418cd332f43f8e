// The VM domain: specs, records and states as the agent keeps them (no gRPC types here).

export const VM_STATES = ["CREATED", "RUNNING", "PAUSED", "STOPPED", "CRASHED", "DELETED"] as const;
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
    };

export interface VmSpec {
  name: string;
  vcpus: number;
  memoryBytes: number;
  boot: BootSource;
  display: { width: number; height: number };
  labels: Record<string, string>;
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
}

/** States in which a helper process is expected to be alive. */
export const LIVE_STATES: readonly VmState[] = ["CREATED", "RUNNING", "PAUSED"];
