// The header of the helper's VM state blob (native/PROTOCOL.md "The state blob"), read by the agent
// so a snapshot's shape, format version and CPU features are checked before any helper is spawned.
// The helper checks the whole blob again (every section's CRC) when it loads it.
import { crc32 } from "node:zlib";
import { STATE_FORMAT } from "./helper-protocol.js";

export const STATE_MAGIC = "QVMSTATE";
export const STATE_HEADER_SIZE = 96;
const CRC_AT = 92;

/** CPUID words of the header, in order (01H ECX, 01H EDX, 07H EBX, ECX, EDX, 80000001H ECX, EDX, 0DH EAX). */
export const CPU_WORD_NAMES = ["CPUID.01H:ECX", "CPUID.01H:EDX", "CPUID.07H:EBX", "CPUID.07H:ECX", "CPUID.07H:EDX", "CPUID.80000001H:ECX", "CPUID.80000001H:EDX", "CPUID.0DH:EAX (XCR0)"] as const;

export interface StateHeader {
  version: number;
  vcpus: number;
  sections: number;
  memoryBytes: number;
  fbWidth: number;
  fbHeight: number;
  cpuFeatures: number[];
  xsaveSize: number;
  flags: number;
  total: number;
}

/** The blob's header, or a sentence saying why it is not one this agent's helper reads. */
export function parseStateHeader(blob: Uint8Array): StateHeader | { problem: string } {
  if (blob.length < STATE_HEADER_SIZE) return { problem: `the state is ${blob.length} bytes, shorter than its ${STATE_HEADER_SIZE}-byte header (truncated)` };
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.length);
  if (b.toString("latin1", 0, 8) !== STATE_MAGIC) return { problem: "the state is not a qumra VM state (bad magic)" };
  const version = b.readUInt32LE(8);
  if (version !== STATE_FORMAT) return { problem: `the state has format version ${version}; this agent's helper reads version ${STATE_FORMAT}` };
  if (b.readUInt32LE(CRC_AT) !== crc32(b.subarray(0, CRC_AT))) return { problem: "the state's header checksum does not match (corrupt)" };
  const total = Number(b.readBigUInt64LE(80));
  if (total !== b.length) return { problem: `the state is ${b.length} bytes but its header says ${total} (${b.length < total ? "truncated" : "trailing bytes"})` };
  const cpuFeatures: number[] = [];
  for (let i = 0; i < CPU_WORD_NAMES.length; i++) cpuFeatures.push(b.readUInt32LE(40 + 4 * i));
  return {
    version,
    vcpus: b.readUInt32LE(16),
    sections: b.readUInt32LE(20),
    memoryBytes: Number(b.readBigUInt64LE(24)),
    fbWidth: b.readUInt32LE(32),
    fbHeight: b.readUInt32LE(36),
    cpuFeatures,
    xsaveSize: b.readUInt32LE(72),
    flags: b.readUInt32LE(76),
    total,
  };
}

/** The CPU feature bits the saved VM had that this host lacks ("CPUID.07H:EBX bits 0x00000020"), or none. */
export function missingCpuFeatures(saved: readonly number[], host: readonly number[]): string[] {
  const missing: string[] = [];
  CPU_WORD_NAMES.forEach((name, i) => {
    const bits = ((saved[i] ?? 0) & ~(host[i] ?? 0)) >>> 0;
    if (bits) missing.push(`${name} bits 0x${bits.toString(16).padStart(8, "0")}`);
  });
  return missing;
}
