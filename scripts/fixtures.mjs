#!/usr/bin/env node
// Test fixtures for booting a stock Linux kernel (test/linux-boot.test.ts, bench boot): Debian's cloud
// kernel as its bzImage and as an uncompressed vmlinux (the PVH entry needs the ELF), and a tiny
// initramfs whose /init (static busybox) prints QUMRA-INIT-OK and runs a shell.
//
//   node scripts/fixtures.mjs     (npm run fixtures)
//
// Output in $XDG_CACHE_HOME/qumra/fixtures (or ~/.cache/qumra/fixtures): vmlinux, bzImage,
// qumra-init.cpio, kernel-version. Idempotent: a file already there is kept. Needs apt (Debian's mirror) once.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export function fixturesDir() {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "qumra", "fixtures");
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], ...opts });
}

/** The versioned kernel package the linux-image-cloud-amd64 metapackage depends on. */
function kernelPackage() {
  const deps = run("apt-cache", ["depends", "linux-image-cloud-amd64"]);
  const m = /Depends:\s*(linux-image-[0-9][^\s]*-cloud-amd64)\b/.exec(deps);
  if (!m) throw new Error(`no versioned kernel in 'apt-cache depends linux-image-cloud-amd64':\n${deps}`);
  return m[1];
}

/** apt-get download + dpkg -x into dir/root; returns the .deb's path. */
function fetchPackage(pkg, dir) {
  const debs = join(dir, "debs");
  mkdirSync(debs, { recursive: true });
  let deb = readdirSync(debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  if (!deb) {
    run("apt-get", ["download", pkg], { cwd: debs, stdio: ["ignore", "inherit", "inherit"] });
    deb = readdirSync(debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${debs}`);
  }
  run("dpkg", ["-x", join(debs, deb), join(dir, "root")]);
  return join(debs, deb);
}

// Compressed kernel payloads by their magic bytes, with the tool that decompresses each. Debian's
// 6.1 cloud kernel is LZ4 (the legacy frame the kernel's build writes), so lz4 is here too.
const PAYLOADS = [
  { name: "lz4", magic: [0x02, 0x21, 0x4c, 0x18], cmd: ["lz4", ["-dc"]] },
  { name: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], cmd: ["xz", ["-dc", "--single-stream"]] },
  { name: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd], cmd: ["zstd", ["-dc"]] },
  { name: "gzip", magic: [0x1f, 0x8b, 0x08], cmd: ["gzip", ["-dc"]] },
];

/**
 * The uncompressed vmlinux inside a bzImage. The setup header's payload_offset/payload_length
 * (boot protocol 2.08+) bound the payload exactly; its format is told by its magic. Without them
 * the first magic found is used and the decompressor is left to stop at the stream's end.
 */
export function extractVmlinux(bz) {
  const setupSects = bz[0x1f1] || 4;
  const pmStart = (setupSects + 1) * 512;
  const hdrOk = bz.toString("latin1", 0x202, 0x206) === "HdrS";
  const offset = hdrOk ? bz.readUInt32LE(0x248) : 0;
  const length = hdrOk ? bz.readUInt32LE(0x24c) : 0;
  const matches = (at, magic) => magic.every((b, i) => bz[at + i] === b);
  let payload;
  let kind;
  if (length > 0) {
    payload = bz.subarray(pmStart + offset, pmStart + offset + length);
    kind = PAYLOADS.find((p) => matches(pmStart + offset, p.magic));
  }
  if (!kind) {
    for (let at = pmStart; at < bz.length && !kind; at++) {
      kind = PAYLOADS.find((p) => matches(at, p.magic));
      if (kind) payload = bz.subarray(at);
    }
  }
  if (!kind) throw new Error("no lz4, xz, zstd or gzip payload found in the bzImage");
  let out;
  try {
    out = execFileSync(kind.cmd[0], kind.cmd[1], { input: payload, maxBuffer: 1 << 30 });
  } catch (e) {
    // gzip/zstd complain about trailing bytes after the stream but still wrote all of it.
    if (!e.stdout || e.stdout.length === 0) throw e;
    out = e.stdout;
  }
  if (out.length < 4 || out.readUInt32BE(0) !== 0x7f454c46)
    throw new Error(`the ${kind.name} payload did not decompress to an ELF file`);
  return out;
}

/** A newc ("070701") cpio archive of entries { name, mode, data?, rdev? }, in order, with its trailer. */
export function newcCpio(entries) {
  const parts = [];
  const pad4 = (n) => (4 - (n % 4)) % 4;
  const hex = (v) => v.toString(16).padStart(8, "0");
  let ino = 1;
  for (const e of [...entries, { name: "TRAILER!!!", mode: 0 }]) {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const fields = [
      ino++, e.mode, 0, 0, e.mode & 0o040000 ? 2 : 1, 0, data.length, 0, 0,
      (e.rdev ?? [0, 0])[0], (e.rdev ?? [0, 0])[1], name.length, 0,
    ];
    const header = Buffer.from(`070701${fields.map(hex).join("")}`, "latin1");
    parts.push(header, name, Buffer.alloc(pad4(header.length + name.length)));
    parts.push(data, Buffer.alloc(pad4(data.length)));
  }
  return Buffer.concat(parts);
}

const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo QUMRA-INIT-OK
exec setsid cttyhack sh
`;

function buildInitramfs(busybox) {
  const S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFCHR = 0o020000;
  return newcCpio([
    { name: "bin", mode: S_IFDIR | 0o755 },
    { name: "dev", mode: S_IFDIR | 0o755 },
    { name: "dev/console", mode: S_IFCHR | 0o600, rdev: [5, 1] },
    { name: "bin/busybox", mode: S_IFREG | 0o755, data: busybox },
    { name: "init", mode: S_IFREG | 0o755, data: Buffer.from(INIT_SCRIPT) },
  ]);
}

function writeAtomic(path, data) {
  writeFileSync(`${path}.tmp`, data);
  renameSync(`${path}.tmp`, path);
}

export function makeFixtures(dir = fixturesDir()) {
  mkdirSync(dir, { recursive: true });
  const work = join(dir, "work");
  const vmlinux = join(dir, "vmlinux");
  const bzImage = join(dir, "bzImage");
  const initramfs = join(dir, "qumra-init.cpio");
  if (!existsSync(vmlinux) || !existsSync(bzImage)) {
    const pkg = kernelPackage();
    fetchPackage(pkg, work);
    const release = pkg.replace(/^linux-image-/, "");
    const bz = readFileSync(join(work, "root", "boot", `vmlinuz-${release}`));
    writeAtomic(vmlinux, extractVmlinux(bz));
    writeAtomic(bzImage, bz);
    writeFileSync(join(dir, "kernel-version"), `${release}\n`);
    console.log(`fixtures: ${vmlinux} and ${bzImage} (${release})`);
  }
  if (!existsSync(initramfs)) {
    fetchPackage("busybox-static", work);
    writeAtomic(initramfs, buildInitramfs(readFileSync(join(work, "root", "bin", "busybox"))));
    console.log(`fixtures: ${initramfs}`);
  }
  rmSync(join(work, "root"), { recursive: true, force: true });
  return { dir, vmlinux, bzImage, initramfs };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { dir } = makeFixtures();
  console.log(`fixtures ready in ${dir}`);
}
