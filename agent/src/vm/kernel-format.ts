// What a Linux VM's kernel file is, told from its first bytes as the helper tells it (native/main.c,
// pvh.c, bzimage.c), so that a wrong file is refused with INVALID_ARGUMENT before a helper starts.
import { closeSync, openSync, readSync } from "node:fs";
import { invalidArgument } from "../errors.js";

export type KernelFormat = "vmlinux" | "bzImage";

const HEAD_BYTES = 0x206;
const ELF_MACHINE_X86_64 = 62;

/** "bzImage" (the boot protocol's "HdrS" at 0x202), "vmlinux" (an ELF64 little-endian x86-64 file), or INVALID_ARGUMENT naming `field`. */
export function kernelFormat(file: string, field: string, shown: string): KernelFormat {
  const head = Buffer.alloc(HEAD_BYTES);
  const fd = openSync(file, "r");
  let got: number;
  try {
    got = readSync(fd, head, 0, HEAD_BYTES, 0);
  } finally {
    closeSync(fd);
  }
  if (got >= 0x206 && head.toString("latin1", 0x202, 0x206) === "HdrS") return "bzImage";
  const elf = got >= 20 && head.toString("latin1", 0, 4) === "\x7fELF";
  if (elf && head[4] === 2 && head[5] === 1 && head.readUInt16LE(18) === ELF_MACHINE_X86_64) return "vmlinux";
  throw invalidArgument(`${field} '${shown}' is neither an x86-64 ELF vmlinux nor a bzImage${elf ? " (an ELF file for another machine)" : ""}`);
}
