// Checks a vm.json read from disk before the agent trusts any of it: a record that is not exactly what
// the agent writes (null, {}, wrong types, an id that is not its folder's name) is refused with the reason.
import { VM_ID } from "./spec.js";
import { VM_STATES, type VmRecord } from "./types.js";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === "string";
const isNat = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Why `value` is not a valid record of the VM folder `folder`, or undefined when it is. */
export function recordProblem(value: unknown, folder: string): string | undefined {
  if (!isObj(value)) return `it is ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}, not an object`;
  if (!isStr(value.vmId)) return "vmId is missing or not a string";
  if (value.vmId !== folder) return `vmId ${JSON.stringify(value.vmId).slice(0, 80)} is not its folder's name '${folder}'`;
  if (!VM_ID.test(value.vmId)) return "vmId is not a valid VM id";
  if (!isStr(value.requestId)) return "requestId is not a string";
  if (!isStr(value.state) || !(VM_STATES as readonly string[]).includes(value.state) || value.state === "DELETED" || value.state === "MIGRATED") return "state is not a VM state";
  for (const f of ["stateReason", "createdAt", "stateChangedAt", "controlSocket"] as const) if (!isStr(value[f])) return `${f} is not a string`;
  if (!(value.controlSocket as string).startsWith("/")) return "controlSocket is not an absolute path";
  if (!isNat(value.helperPid)) return "helperPid is not a non-negative integer";
  if (!isNat(value.lastEventSequence)) return "lastEventSequence is not a non-negative integer";
  if (value.startedAt !== undefined && !isStr(value.startedAt)) return "startedAt is not a string";
  if (value.intent !== undefined && !(isObj(value.intent) && isStr(value.intent.op))) return "intent is not an object with an op";
  return specProblem(value.spec);
}

/** Why `spec` is not a VM spec as the agent writes it (in vm.json, in a snapshot's manifest), or undefined. */
export function specProblem(spec: unknown): string | undefined {
  if (!isObj(spec)) return "spec is not an object";
  if (!isStr(spec.name)) return "spec.name is not a string";
  if (!isNat(spec.vcpus) || spec.vcpus < 1) return "spec.vcpus is not a positive integer";
  if (!isNat(spec.memoryBytes) || spec.memoryBytes < 1) return "spec.memoryBytes is not a positive integer";
  if (!isObj(spec.display) || !isNat(spec.display.width) || !isNat(spec.display.height)) return "spec.display is not {width, height}";
  if (!isObj(spec.labels) || !Object.values(spec.labels).every(isStr)) return "spec.labels is not a map of strings";
  const boot = spec.boot;
  if (!isObj(boot) || (boot.kind !== "demo" && boot.kind !== "flat" && boot.kind !== "linux")) return "spec.boot.kind is not demo, flat or linux";
  if (boot.kind === "linux" && (!isStr(boot.kernel) || !isStr(boot.cmdline) || (boot.initrd !== undefined && !isStr(boot.initrd)))) return "spec.boot (linux) has missing or wrong fields";
  if (boot.kind === "flat") {
    if (!isStr(boot.imageSha256) || !isNat(boot.imageBytes) || !isNat(boot.loadAddress) || !isNat(boot.entryAddress)) return "spec.boot (flat) has missing or wrong fields";
    if (boot.mode !== "long" && boot.mode !== "protected") return "spec.boot.mode is not long or protected";
  }
  return undefined;
}

/** The record, once recordProblem found nothing. */
export const asRecord = (value: unknown): VmRecord => value as VmRecord;
