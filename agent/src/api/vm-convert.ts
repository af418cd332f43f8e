// Conversions between qumra.v1 messages and the VM domain types.
import type { SpiceClientInfo } from "../spice/session.js";
import { invalidArgument } from "../errors.js";
import {
  CpuMode,
  VmState as PbVmState,
  VmEventType as PbEventType,
  type Vm,
  type VmSpec as PbVmSpec,
  type VmEvent as PbVmEvent,
  type Regs,
  type Sregs,
  type Segment as PbSegment,
  type DescriptorTable as PbDescriptorTable,
} from "../gen/qumra/v1/vm.js";
import type { SpecRequest } from "../vm/spec.js";
import { compressionFromPb, compressionToPb } from "./compression.js";
import type { VmEvent } from "../vm/event-log.js";
import type { HelperHang } from "../vm/helper-link.js";
import {
  DTABLES,
  SEGMENTS,
  VM_STATES,
  type DescriptorTable,
  type GpRegs,
  type SameUnion,
  type Segment,
  type SpecialRegs,
  type VmRecord,
  type VmSpec,
  type VmState,
} from "../vm/types.js";

const STATE_TO_PB: Record<VmState, PbVmState> = {
  CREATED: PbVmState.VM_STATE_CREATED,
  RUNNING: PbVmState.VM_STATE_RUNNING,
  PAUSED: PbVmState.VM_STATE_PAUSED,
  STOPPED: PbVmState.VM_STATE_STOPPED,
  CRASHED: PbVmState.VM_STATE_CRASHED,
  DELETED: PbVmState.VM_STATE_DELETED,
  MIGRATED: PbVmState.VM_STATE_MIGRATED,
};

export const stateToPb = (s: VmState): PbVmState => STATE_TO_PB[s];

export function stateFromPb(s: PbVmState): VmState | undefined {
  if (s === PbVmState.VM_STATE_UNSPECIFIED) return undefined;
  const state = VM_STATES.find((k) => STATE_TO_PB[k] === s);
  if (!state) throw invalidArgument(`state ${s} is not a known VmState`);
  return state;
}

/** Bytes as a JS number; rejects values beyond 2^53 with the field's name. */
export function safeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`${field} ${value} is too large`);
  return Number(value);
}

export function specFromPb(spec: PbVmSpec | undefined): SpecRequest {
  if (!spec) throw invalidArgument("spec is missing");
  const boot = spec.boot;
  let bootReq: SpecRequest["boot"];
  if (boot?.$case === "demo") bootReq = { kind: "demo" };
  else if (boot?.$case === "linux") bootReq = { kind: "linux", kernel: boot.value.kernel, initrd: boot.value.initrd, cmdline: boot.value.cmdline };
  else if (boot?.$case === "flatImage") {
    const mode = boot.value.mode;
    if (mode !== CpuMode.CPU_MODE_UNSPECIFIED && mode !== CpuMode.CPU_MODE_LONG && mode !== CpuMode.CPU_MODE_PROTECTED) {
      throw invalidArgument(`spec.flat_image.mode ${mode} is not a known CpuMode`);
    }
    bootReq = {
      kind: "flat",
      image: boot.value.image,
      loadAddress: safeNumber(boot.value.loadAddress, "spec.flat_image.load_address"),
      entryAddress: safeNumber(boot.value.entryAddress, "spec.flat_image.entry_address"),
      mode: mode === CpuMode.CPU_MODE_PROTECTED ? "protected" : "long",
    };
  }
  return {
    name: spec.name,
    vcpus: spec.vcpus,
    memoryBytes: safeNumber(spec.memoryBytes, "spec.memory_bytes"),
    boot: bootReq,
    display: spec.display,
    labels: spec.labels,
    imageCompression: compressionFromPb(spec.imageCompression, "spec.image_compression"),
    cpuWeight: spec.cpuWeight,
  };
}

/** A VM's spec as the API shows it (a flat image's bytes are not echoed: Vm.image_sha256 names them). */
export function specToPb(spec: VmSpec): PbVmSpec {
  const boot = spec.boot;
  return {
    name: spec.name,
    vcpus: spec.vcpus,
    memoryBytes: BigInt(spec.memoryBytes),
    boot:
      boot.kind === "demo"
        ? { $case: "demo", value: {} }
        : boot.kind === "linux"
        ? { $case: "linux", value: { kernel: boot.kernel, initrd: boot.initrd ?? "", cmdline: boot.cmdline } }
        : {
            $case: "flatImage",
            value: {
              image: Buffer.alloc(0),
              loadAddress: BigInt(boot.loadAddress),
              entryAddress: BigInt(boot.entryAddress),
              mode: boot.mode === "protected" ? CpuMode.CPU_MODE_PROTECTED : CpuMode.CPU_MODE_LONG,
            },
          },
    display: spec.display,
    labels: spec.labels,
    imageCompression: compressionToPb(spec.imageCompression),
    cpuWeight: spec.cpuWeight ?? 100,
  };
}

/** `clients`: the VM's SPICE clients now (the SPICE server's clientsOf). */
/** `hang`: the helper does not answer (VmManager.hang), shown as Vm.health. */
export function vmToPb(r: VmRecord, clients: SpiceClientInfo[] = [], hang?: HelperHang): Vm {
  const boot = r.spec.boot;
  return {
    vmId: r.vmId,
    spec: specToPb(r.spec),
    state: stateToPb(r.state),
    stateReason: r.stateReason,
    createdAt: new Date(r.createdAt),
    stateChangedAt: new Date(r.stateChangedAt),
    requestId: r.requestId,
    helperPid: r.helperPid,
    lastEventSequence: BigInt(r.lastEventSequence),
    imageSha256: boot.kind === "flat" ? boot.imageSha256 : "",
    spiceClients: clients.map((c) => ({ peer: c.peer, sessionId: c.sessionId, transport: c.transport, connectedAt: c.connectedAt, channels: c.channels, latencyMs: c.latencyMs ?? 0 })),
    sandbox: r.sandbox ? { ...r.sandbox } : undefined,
    health: hang ? { hung: true, reason: hang.reason, since: hang.since } : undefined,
  };
}

const EVENT_TO_PB: Record<VmEvent["type"], PbEventType> = {
  CREATED: PbEventType.VM_EVENT_TYPE_CREATED,
  STATE_CHANGED: PbEventType.VM_EVENT_TYPE_STATE_CHANGED,
  GUEST_RESET: PbEventType.VM_EVENT_TYPE_GUEST_RESET,
  DELETED: PbEventType.VM_EVENT_TYPE_DELETED,
  NOTICE: PbEventType.VM_EVENT_TYPE_NOTICE,
  DISPLAY_CLIENT_CONNECTED: PbEventType.VM_EVENT_TYPE_DISPLAY_CLIENT_CONNECTED,
  DISPLAY_CLIENT_REFUSED: PbEventType.VM_EVENT_TYPE_DISPLAY_CLIENT_REFUSED,
  DISPLAY_CLIENT_DISCONNECTED: PbEventType.VM_EVENT_TYPE_DISPLAY_CLIENT_DISCONNECTED,
  MIGRATED: PbEventType.VM_EVENT_TYPE_MIGRATED,
};

/** `instanceId`: the agent instance that numbered the event (EventLog.instanceId). */
export function eventToPb(e: VmEvent, instanceId: string): PbVmEvent {
  return {
    sequence: BigInt(e.sequence),
    time: e.time,
    type: EVENT_TO_PB[e.type],
    vmId: e.vmId,
    previousState: e.previousState ? stateToPb(e.previousState) : PbVmState.VM_STATE_UNSPECIFIED,
    state: stateToPb(e.state),
    reason: e.reason,
    vm: e.vm ? vmToPb(e.vm) : undefined,
    instanceId,
  };
}

/** A snapshot, heartbeat or resync event (not numbered: it repeats the latest sequence). */
export function syntheticEvent(type: PbEventType, sequence: number, instanceId: string, record?: VmRecord, hang?: HelperHang): PbVmEvent {
  return {
    sequence: BigInt(sequence),
    time: new Date(),
    type,
    vmId: record?.vmId ?? "",
    previousState: PbVmState.VM_STATE_UNSPECIFIED,
    state: record ? stateToPb(record.state) : PbVmState.VM_STATE_UNSPECIFIED,
    reason: "",
    vm: record ? vmToPb(record, [], hang) : undefined,
    instanceId,
  };
}

// The API's register messages carry exactly the helper's registers (native/regs-list.h): these fail
// to compile when one side gains a register the other lacks.
const registersMatchApi: [
  SameUnion<keyof Regs, keyof GpRegs>,
  SameUnion<keyof Sregs, keyof SpecialRegs>,
  SameUnion<keyof PbSegment, keyof Segment>,
  SameUnion<keyof PbDescriptorTable, keyof DescriptorTable>,
] = [true, true, true, true];
void registersMatchApi;

export const regsToPb = (r: GpRegs): Regs => ({ ...r });
export const sregsToPb = (s: SpecialRegs): Sregs => ({ ...s });

export function regsFromPb(r: Regs): GpRegs {
  return { ...r };
}

export function sregsFromPb(s: Sregs): SpecialRegs {
  for (const name of [...SEGMENTS, ...DTABLES]) {
    if (!s[name]) throw invalidArgument(`sregs.${name} is missing: give every segment and descriptor table (read them with GetVcpuState first)`);
  }
  return s as SpecialRegs;
}
