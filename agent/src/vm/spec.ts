// Validation of VM ids and specs, with messages that name the field and the accepted range.
import { QumraError, invalidArgument } from "../errors.js";
import type { ImageCompression } from "../display/types.js";
import type { VmSpec } from "./types.js";

export const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
/** Guest RAM stops at 3 GiB below 4 GiB (the hole holds the framebuffer); the rest starts at 4 GiB. */
const LOW_RAM_END = 3 * GIB;
const HIGH_RAM_START = 4 * GIB;
/** The demo guest is loaded and entered here (native/guest/guest.ld). */
const DEMO_LOAD_ADDRESS = 0x100000;
/** Room the demo guest needs past its image: its bss and stack (about 52 KiB today), with headroom. */
const DEMO_BSS_ALLOWANCE = 256 * 1024;
/** The helper keeps the GDT and the boot page tables below this address. */
export const MIN_LOAD_ADDRESS = 0xa0000;

/** Guest-physical RAM ranges [start, end) of a VM with this much memory (as qumra-vmm lays it out). */
export function guestRamRanges(memoryBytes: number): [number, number][] {
  if (memoryBytes <= LOW_RAM_END) return [[0, memoryBytes]];
  return [[0, LOW_RAM_END], [HIGH_RAM_START, HIGH_RAM_START + memoryBytes - LOW_RAM_END]];
}

/** Whether [address, address + length) lies inside one RAM range. */
export function inGuestRam(memoryBytes: number, address: number, length: number): boolean {
  return guestRamRanges(memoryBytes).some(([start, end]) => address >= start && address + length <= end);
}
export const MAX_IMAGE_BYTES = 16 * MIB;
/** The helper's limit on a kernel command line (native/pvh.h). */
export const MAX_CMDLINE_BYTES = 2047;
/** Less than this and a stock kernel (loaded at 16 MiB, ~46 MiB in memory) has no room to run. */
export const LINUX_MIN_MEMORY = 128 * MIB;
export const DEFAULT_LOAD_ADDRESS = 0x100000;

export const VM_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const NAME = /^[A-Za-z0-9._-]{1,63}$/;
const LABEL_KEY = /^[A-Za-z0-9._/-]{1,63}$/;

export function validateVmId(vmId: string, field = "vm_id"): void {
  if (!VM_ID.test(vmId)) {
    throw invalidArgument(`${field} '${vmId}' is invalid: use 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit`);
  }
}

/** What a client asked for, before defaults and checks (units: bytes, pixels). */
export interface SpecRequest {
  name: string;
  vcpus: number;
  memoryBytes: number;
  boot?:
    | { kind: "demo" }
    | { kind: "flat"; image: Uint8Array; loadAddress: number; entryAddress: number; mode: "long" | "protected" }
    | { kind: "linux"; kernel: string; initrd: string; cmdline: string };
  display?: { width: number; height: number };
  labels: Record<string, string>;
  imageCompression?: ImageCompression;
  /** cgroup cpu.weight; 0 or absent: 100. */
  cpuWeight?: number;
}

export interface HostLimits {
  /** KVM_CAP_MAX_VCPUS of this host. */
  maxVcpus: number;
  /** Bytes of memory the host can still give (MemAvailable). */
  availableMemory: number;
  /** The host's CPU feature summary (`qumra-vmm --probe` cpuFeatures), which a snapshot's must fit in. */
  cpuFeatures?: number[];
  /** Size of the demo guest's image (native/build/demo-guest.bin), when known: a demo VM must hold it. */
  demoImageBytes?: number;
}

/** The least memory a demo VM needs: the image at 1 MiB, then its bss and stack. */
export function demoMinimumMemory(imageBytes: number): number {
  return Math.ceil((DEMO_LOAD_ADDRESS + imageBytes + DEMO_BSS_ALLOWANCE) / MIB) * MIB;
}

/** Applies defaults and checks every field; the image's own bytes are returned separately for storage. */
export function validateSpec(vmId: string, req: SpecRequest, limits: HostLimits, sha256: (b: Uint8Array) => string): { spec: VmSpec; image?: Uint8Array } {
  const name = req.name || vmId;
  if (!NAME.test(name)) throw invalidArgument(`spec.name '${name}' is invalid: use 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' and '-'`);

  const vcpus = req.vcpus || 1;
  if (!Number.isInteger(vcpus) || vcpus < 1) throw invalidArgument(`spec.vcpus ${vcpus} is invalid: at least 1`);
  if (vcpus > limits.maxVcpus) {
    throw new QumraError("resource-exhausted", `spec.vcpus ${vcpus} is more than this host's KVM allows per VM (${limits.maxVcpus})`);
  }

  const memoryBytes = req.memoryBytes || 64 * MIB;
  if (!Number.isSafeInteger(memoryBytes) || memoryBytes < MIB || memoryBytes % 4096 !== 0) {
    throw invalidArgument(`spec.memory_bytes ${memoryBytes} is invalid: at least 1 MiB (1048576) and a multiple of 4096`);
  }
  if (memoryBytes > limits.availableMemory) {
    throw new QumraError(
      "resource-exhausted",
      `spec.memory_bytes ${memoryBytes} (${(memoryBytes / MIB).toFixed(0)} MiB) is more than this host can give now (${Math.floor(limits.availableMemory / MIB)} MiB available)`,
    );
  }

  const width = req.display?.width || 1024;
  const height = req.display?.height || 768;
  if (width < 64 || width > 4096 || height < 64 || height > 2160) {
    throw invalidArgument(`spec.display ${width}x${height} is invalid: width 64 to 4096, height 64 to 2160`);
  }

  const labelEntries = Object.entries(req.labels);
  if (labelEntries.length > 32) throw invalidArgument(`spec.labels has ${labelEntries.length} entries: at most 32`);
  for (const [key, value] of labelEntries) {
    if (!LABEL_KEY.test(key)) throw invalidArgument(`spec.labels key '${key}' is invalid: 1 to 63 characters of A-Z, a-z, 0-9, '.', '_', '/' and '-'`);
    if (value.length > 255) throw invalidArgument(`spec.labels['${key}'] is ${value.length} characters long: at most 255`);
  }

  const cpuWeight = req.cpuWeight || 100;
  if (!Number.isInteger(cpuWeight) || cpuWeight < 1 || cpuWeight > 10000) throw invalidArgument(`spec.cpu_weight ${cpuWeight} is invalid: 1 to 10000 (0 means 100)`);

  const base = { name, vcpus, memoryBytes, cpuWeight, display: { width, height }, labels: { ...req.labels }, ...(req.imageCompression ? { imageCompression: req.imageCompression } : {}) };
  const boot = req.boot;
  if (!boot) throw invalidArgument("spec.boot is missing: give flat_image, linux or demo");
  if (boot.kind === "linux") {
    if (!boot.kernel) throw invalidArgument("spec.linux.kernel is empty: give the kernel's (vmlinux or bzImage) path relative to the agent's --images-dir");
    const cmdlineBytes = Buffer.byteLength(boot.cmdline);
    if (cmdlineBytes > MAX_CMDLINE_BYTES) throw invalidArgument(`spec.linux.cmdline is ${cmdlineBytes} bytes: at most ${MAX_CMDLINE_BYTES} (Linux's COMMAND_LINE_SIZE less its NUL)`);
    if (boot.cmdline.includes("\0")) throw invalidArgument("spec.linux.cmdline contains a NUL byte");
    if (memoryBytes < LINUX_MIN_MEMORY) throw invalidArgument(`spec.memory_bytes ${memoryBytes} is too small to boot Linux: at least ${LINUX_MIN_MEMORY} (${LINUX_MIN_MEMORY / MIB} MiB)`);
    return { spec: { ...base, boot: { kind: "linux", kernel: boot.kernel, ...(boot.initrd ? { initrd: boot.initrd } : {}), cmdline: boot.cmdline } } };
  }
  if (boot.kind === "demo") {
    if (limits.demoImageBytes !== undefined && memoryBytes < demoMinimumMemory(limits.demoImageBytes)) {
      const need = demoMinimumMemory(limits.demoImageBytes);
      throw invalidArgument(`spec.memory_bytes ${memoryBytes} is too small for the demo guest: its ${limits.demoImageBytes}-byte image is loaded at 1 MiB and needs room for its stack; give at least ${need} (${need / MIB} MiB)`);
    }
    return { spec: { ...base, boot: { kind: "demo" } } };
  }

  const size = boot.image.length;
  if (size === 0) throw invalidArgument("spec.flat_image.image is empty");
  if (size > MAX_IMAGE_BYTES) throw invalidArgument(`spec.flat_image.image is ${size} bytes: at most ${MAX_IMAGE_BYTES} (16 MiB)`);
  const loadAddress = boot.loadAddress || DEFAULT_LOAD_ADDRESS;
  const hex = (n: number) => `0x${n.toString(16)}`;
  if (loadAddress % 4096 !== 0) throw invalidArgument(`spec.flat_image.load_address ${hex(loadAddress)} is not page-aligned (4096)`);
  if (boot.mode === "long" && loadAddress < DEFAULT_LOAD_ADDRESS) {
    throw invalidArgument(`spec.flat_image.load_address ${hex(loadAddress)} is below 0x100000: in long mode the page tables and GDT live there`);
  }
  if (loadAddress < MIN_LOAD_ADDRESS) {
    throw invalidArgument(`spec.flat_image.load_address ${hex(loadAddress)} is below ${hex(MIN_LOAD_ADDRESS)}: the GDT and boot tables live there`);
  }
  if (!inGuestRam(memoryBytes, loadAddress, size)) {
    const ranges = guestRamRanges(memoryBytes).map(([a, b]) => `${hex(a)}..${hex(b)}`).join(" and ");
    throw invalidArgument(`spec.flat_image: the ${size}-byte image at ${hex(loadAddress)} is not inside guest RAM (${ranges})`);
  }
  const entryAddress = boot.entryAddress || loadAddress;
  if (entryAddress < loadAddress || entryAddress >= loadAddress + size) {
    throw invalidArgument(`spec.flat_image.entry_address ${hex(entryAddress)} is outside the image (${hex(loadAddress)} to ${hex(loadAddress + size - 1)})`);
  }
  return {
    spec: { ...base, boot: { kind: "flat", imageSha256: sha256(boot.image), imageBytes: size, loadAddress, entryAddress, mode: boot.mode } },
    image: boot.image,
  };
}
