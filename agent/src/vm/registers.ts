// vCPU registers between the helper's flat names ("rax", "cs.selector", "gdt.base", "apic_base") and
// the domain's structs (VcpuRegs), driven by the register lists generated from native/regs-list.h.
import { CONTROL_REGS, DTABLES, DTABLE_FIELDS, GP_REGS, SEGMENTS, SEGMENT_FIELDS } from "../gen/helper-abi.js";
import type { Registers } from "./helper-protocol.js";
import type { CamelCase, DescriptorTable, GpRegs, SameUnion, Segment, SpecialRegs, VcpuRegs } from "./types.js";

type Field = { readonly name: string; readonly bytes: number; readonly max: bigint };

// The domain's Segment and DescriptorTable must have exactly the helper's fields, and a field is a
// boolean exactly where its largest value is 1: these fail to compile when native/regs-list.h changes.
type FieldNames<F extends readonly Field[]> = F[number]["name"];
type FlagNames<F extends readonly Field[]> = Extract<F[number], { max: 1n }>["name"];
type BooleanKeys<T> = { [K in keyof T]: T[K] extends boolean ? K : never }[keyof T];
const segmentFieldsMatch: SameUnion<FieldNames<typeof SEGMENT_FIELDS>, keyof Segment> = true;
const segmentFlagsMatch: SameUnion<FlagNames<typeof SEGMENT_FIELDS>, BooleanKeys<Segment>> = true;
const dtableFieldsMatch: SameUnion<FieldNames<typeof DTABLE_FIELDS>, keyof DescriptorTable> = true;
void [segmentFieldsMatch, segmentFlagsMatch, dtableFieldsMatch];

/** "apic_base" → "apicBase": the domain (and the API) spell the helper's names in camel case. */
export function camelCase<S extends string>(name: S): CamelCase<S> {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()) as CamelCase<S>;
}

/** A field as the domain holds it: flags as booleans, 64-bit values as bigints, the rest as numbers. */
function fieldValue(field: Field, raw: bigint): bigint | number | boolean {
  if (field.max === 1n) return raw !== 0n;
  return field.bytes === 8 ? raw : Number(raw);
}

function fieldRaw(value: bigint | number | boolean): bigint {
  return typeof value === "boolean" ? (value ? 1n : 0n) : BigInt(value);
}

type FieldValues = Record<string, bigint | number | boolean>;

function struct(flat: Registers, prefix: string, fields: readonly Field[]): FieldValues {
  return Object.fromEntries(fields.map((f) => [f.name, fieldValue(f, flat[`${prefix}.${f.name}`])]));
}

/** GET_REGS / SET_REGS output as the domain's structs (decodeRegs has checked every name is there). */
export function registersFromHelper(flat: Registers): VcpuRegs {
  const regs = Object.fromEntries(GP_REGS.map((n) => [n, flat[n]])) as GpRegs;
  const sregs: Record<string, unknown> = {};
  for (const s of SEGMENTS) sregs[s] = struct(flat, s, SEGMENT_FIELDS);
  for (const t of DTABLES) sregs[t] = struct(flat, t, DTABLE_FIELDS);
  for (const n of CONTROL_REGS) sregs[camelCase(n)] = flat[n];
  return { regs, sregs: sregs as SpecialRegs };
}

/** The helper's flat names for the given structs (all of their registers; an absent struct adds none). */
export function registersToHelper(state: { regs?: GpRegs; sregs?: SpecialRegs }): Registers {
  const flat: Registers = {};
  const { regs, sregs } = state;
  if (regs) for (const n of GP_REGS) flat[n] = regs[n];
  if (sregs) {
    const put = (prefix: string, value: object, fields: readonly Field[]) => {
      for (const f of fields) flat[`${prefix}.${f.name}`] = fieldRaw((value as FieldValues)[f.name]);
    };
    for (const s of SEGMENTS) put(s, sregs[s], SEGMENT_FIELDS);
    for (const t of DTABLES) put(t, sregs[t], DTABLE_FIELDS);
    for (const n of CONTROL_REGS) flat[n] = sregs[camelCase(n)];
  }
  return flat;
}
