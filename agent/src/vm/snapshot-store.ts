// Snapshots on disk: STATE_DIR/snapshots/NAME/ with memory.bin (guest RAM as a sparse file: only the
// ranges that hold data are written, holes elsewhere), state.bin (the helper's state blob), console.bin
// (the agent's scrollback), image.bin (a flat VM's image) and manifest.json (written last). A snapshot is
// built in snapshots/.tmp-NAME-PID-N/, every file fsynced, then renamed into place and the folder
// fsynced: a crash leaves a temp folder (removed at the next start), never a listed half snapshot.
// Every path is built from a checked name, so nothing outside snapshots/ is touched.
import { createHash } from "node:crypto";
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync, ftruncateSync, existsSync } from "node:fs";
import path from "node:path";
import { crc32 } from "node:zlib";
import { QumraError, invalidArgument, notFound } from "../errors.js";
import { specProblem } from "./record-schema.js";
import { shortWrite, storageError } from "./storage-error.js";
import type { VmSpec } from "./types.js";

/** 1 to 63 characters of [A-Za-z0-9._-], not starting with '.' (temp folders do). */
export const SNAPSHOT_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}$/;
export const MANIFEST_VERSION = 1;
const MANIFEST_MAX_BYTES = 1 << 20;
/** Pieces of memory that are all zeros are not written (they stay holes). */
const PIECE = 64 << 10;
const ZEROS = Buffer.alloc(1 << 20);

/** RAM below 3 GiB sits at gpa = file offset; the rest at 4 GiB + (offset − 3 GiB). */
const HOLE_START = 0xc000_0000;
const HIGH_START = 0x1_0000_0000;

export const ramOffsetOf = (gpa: number): number => (gpa >= HIGH_START ? HOLE_START + (gpa - HIGH_START) : gpa);
export const gpaOfRamOffset = (offset: number): number => (offset >= HOLE_START ? HIGH_START + (offset - HOLE_START) : offset);

export interface FileSum {
  file: string;
  bytes: number;
  sha256: string;
}

export interface SnapshotManifest {
  manifestVersion: number;
  name: string;
  /** Format version of state.bin (the helper's PROTO_STATE_FORMAT). */
  stateFormat: number;
  createdAt: string;
  sourceVmId: string;
  /** The source VM's spec: a restore makes a VM of exactly this shape. */
  spec: VmSpec;
  /** Whether the source VM was running (it was paused for the snapshot and resumed). */
  wasRunning: boolean;
  /** The CPU features of the saving host, from state.bin's header. */
  cpuFeatures: number[];
  /** RAM as a sparse file of `bytes`; crc32 over all of it (holes are zeros), as RAM_CHECKSUM computes. */
  memory: { file: string; bytes: number; dataBytes: number; crc32: number };
  state: FileSum;
  console: FileSum;
  image?: FileSum;
}

export interface SnapshotInfo {
  manifest: SnapshotManifest;
  /** Bytes allocated on disk by the snapshot's files (the sparse memory file counts only its data). */
  diskBytes: number;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isNat = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isSum = (v: unknown, file: string): boolean => isObj(v) && v.file === file && isNat(v.bytes) && typeof v.sha256 === "string" && /^[0-9a-f]{64}$/.test(v.sha256);

/** Why a manifest read from disk is not one this agent writes, or undefined. */
export function manifestProblem(m: unknown, name: string): string | undefined {
  if (!isObj(m)) return "manifest.json is not a JSON object";
  if (m.manifestVersion !== MANIFEST_VERSION) return `manifest version ${JSON.stringify(m.manifestVersion)}, this agent reads version ${MANIFEST_VERSION}`;
  if (m.name !== name) return `manifest names ${JSON.stringify(m.name)}, not its folder '${name}'`;
  if (!isNat(m.stateFormat)) return "manifest stateFormat is not a number";
  if (typeof m.createdAt !== "string" || typeof m.sourceVmId !== "string") return "manifest createdAt or sourceVmId is not a string";
  if (typeof m.wasRunning !== "boolean") return "manifest wasRunning is not a boolean";
  if (!Array.isArray(m.cpuFeatures) || m.cpuFeatures.length !== 8 || !m.cpuFeatures.every((w) => isNat(w) && w <= 0xffffffff)) return "manifest cpuFeatures is not 8 32-bit words";
  const spec = specProblem(m.spec);
  if (spec) return `manifest ${spec}`;
  const mem = m.memory;
  if (!isObj(mem) || mem.file !== "memory.bin" || !isNat(mem.bytes) || !isNat(mem.dataBytes) || !isNat(mem.crc32) || mem.crc32 > 0xffffffff) return "manifest memory is not {file, bytes, dataBytes, crc32}";
  if ((m.spec as VmSpec).memoryBytes !== mem.bytes) return `manifest memory is ${mem.bytes} bytes but its spec says ${(m.spec as VmSpec).memoryBytes}`;
  if (!isSum(m.state, "state.bin")) return "manifest state is not {file: state.bin, bytes, sha256}";
  if (!isSum(m.console, "console.bin")) return "manifest console is not {file: console.bin, bytes, sha256}";
  if (m.image !== undefined && !isSum(m.image, "image.bin")) return "manifest image is not {file: image.bin, bytes, sha256}";
  if ((m.spec as VmSpec).boot.kind === "flat" && m.image === undefined) return "manifest has a flat-image spec but no image";
  return undefined;
}

export function validateSnapshotName(name: unknown, field = "snapshot_name"): asserts name is string {
  if (typeof name !== "string" || !SNAPSHOT_NAME.test(name)) {
    throw invalidArgument(`${field} ${JSON.stringify(name ?? "").slice(0, 80)} is invalid: use 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.'`);
  }
}

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

function fsyncPath(p: string): void {
  const fd = openSync(p, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, data: Uint8Array, position: number, file: string): void {
  for (let off = 0; off < data.length; ) {
    const n = writeSync(fd, data, off, data.length - off, position + off);
    if (n <= 0) throw shortWrite(file, off, data.length);
    off += n;
  }
}

/** A snapshot being written, in its temp folder until commit(). */
export class SnapshotWriter {
  private memFd: number | undefined;
  private memCrc = 0;
  private crcAt = 0;
  private memBytes = 0;
  dataBytes = 0;

  constructor(
    readonly tmpDir: string,
    private readonly finalDir: string,
  ) {}

  /** memory.bin of `bytes` bytes, all holes so far. */
  openMemory(bytes: number): void {
    const file = path.join(this.tmpDir, "memory.bin");
    try {
      this.memFd = openSync(file, "w", 0o600);
      ftruncateSync(this.memFd, bytes);
    } catch (err) {
      throw storageError(err, "write", file);
    }
    this.memBytes = bytes;
  }

  /**
   * RAM bytes at RAM-file `offset`, in increasing offsets: pieces that are all zeros stay holes. The
   * CRC-32 of the whole file is kept on the way (the gaps before `offset` count as zeros).
   */
  writeMemory(offset: number, data: Buffer): void {
    const file = path.join(this.tmpDir, "memory.bin");
    if (this.memFd === undefined || offset < this.crcAt || offset + data.length > this.memBytes) throw new QumraError("internal", `memory written out of order at ${offset} (+${data.length})`);
    this.zeroCrcTo(offset);
    this.memCrc = crc32(data, this.memCrc);
    this.crcAt = offset + data.length;
    this.dataBytes += data.length;
    try {
      for (let at = 0; at < data.length; at += PIECE) {
        const piece = data.subarray(at, at + PIECE);
        if (!piece.equals(ZEROS.subarray(0, piece.length))) writeAll(this.memFd, piece, offset + at, file);
      }
    } catch (err) {
      throw storageError(err, "write", file);
    }
  }

  private zeroCrcTo(offset: number): void {
    while (this.crcAt < offset) {
      const n = Math.min(ZEROS.length, offset - this.crcAt);
      this.memCrc = crc32(ZEROS.subarray(0, n), this.memCrc);
      this.crcAt += n;
    }
  }

  /** The CRC-32 of all of memory.bin once every range is written. */
  memoryCrc(): number {
    this.zeroCrcTo(this.memBytes);
    return this.memCrc >>> 0;
  }

  /** A whole small file (state.bin, console.bin, image.bin), fsynced; returns its checksum entry. */
  writeFile(name: string, data: Uint8Array): FileSum {
    const file = path.join(this.tmpDir, name);
    let fd: number | undefined;
    try {
      fd = openSync(file, "w", 0o600);
      writeAll(fd, data, 0, file);
      fsyncSync(fd);
    } catch (err) {
      throw storageError(err, "write", file);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    return { file: name, bytes: data.length, sha256: sha256(data) };
  }

  /** manifest.json last, everything fsynced, the folder renamed into place and its parent fsynced. */
  commit(manifest: SnapshotManifest): void {
    try {
      if (this.memFd !== undefined) {
        fsyncSync(this.memFd);
        closeSync(this.memFd);
        this.memFd = undefined;
      }
      this.writeFile("manifest.json", Buffer.from(JSON.stringify(manifest, null, 2)));
      fsyncPath(this.tmpDir);
      if (existsSync(this.finalDir)) throw new QumraError("already-exists", `snapshot folder ${this.finalDir} appeared while the snapshot was written`);
      renameSync(this.tmpDir, this.finalDir);
      fsyncPath(path.dirname(this.finalDir));
    } catch (err) {
      throw storageError(err, "commit the snapshot", this.finalDir);
    }
  }

  /** Removes the temp folder (a failed or abandoned snapshot). */
  abort(): void {
    if (this.memFd !== undefined) {
      try {
        closeSync(this.memFd);
      } catch {
        /* already closed */
      }
      this.memFd = undefined;
    }
    rmSync(this.tmpDir, { recursive: true, force: true });
  }
}

/** What a checked snapshot holds, read back for a restore. */
export interface VerifiedSnapshot {
  manifest: SnapshotManifest;
  state: Buffer;
  console: Buffer;
  image?: Buffer;
  /** memory.bin, open for reading (close it with closeMemory). */
  memoryFd: number;
}

export class SnapshotStore {
  readonly root: string;
  private seq = 0;

  constructor(stateDir: string) {
    this.root = path.join(stateDir, "snapshots");
  }

  dir(name: string): string {
    validateSnapshotName(name);
    return path.join(this.root, name);
  }

  exists(name: string): boolean {
    return existsSync(this.dir(name));
  }

  /** A writer in a fresh temp folder for snapshot `name`. */
  begin(name: string): SnapshotWriter {
    const finalDir = this.dir(name);
    const tmp = path.join(this.root, `.tmp-${name}-${process.pid}-${++this.seq}`);
    try {
      mkdirSync(this.root, { recursive: true, mode: 0o700 });
      mkdirSync(tmp, { mode: 0o700 });
    } catch (err) {
      throw storageError(err, "create the snapshot folder", tmp);
    }
    return new SnapshotWriter(tmp, finalDir);
  }

  /** Temp folders of snapshots a crash interrupted; removed (called at start, before any snapshot runs). */
  cleanTemp(onRemoved: (dir: string) => void): void {
    for (const n of this.names()) {
      if (!n.startsWith(".tmp-")) continue;
      const dir = path.join(this.root, n);
      rmSync(dir, { recursive: true, force: true });
      onRemoved(dir);
    }
  }

  /** The manifest of snapshot `name` (NOT_FOUND without one; FAILED_PRECONDITION for a damaged one). */
  manifest(name: string): SnapshotManifest {
    const file = path.join(this.dir(name), "manifest.json");
    let text: Buffer;
    try {
      const fd = openSync(file, "r");
      try {
        if (fstatSync(fd).size > MANIFEST_MAX_BYTES) throw new QumraError("failed-precondition", `snapshot '${name}' is damaged: manifest.json is larger than ${MANIFEST_MAX_BYTES} bytes`);
        text = readFileSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if (err instanceof QumraError) throw err;
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw notFound(`no snapshot '${name}' on this host`);
      throw storageError(err, "read", file);
    }
    let value: unknown;
    try {
      value = JSON.parse(text.toString("utf8"));
    } catch {
      throw new QumraError("failed-precondition", `snapshot '${name}' is damaged: manifest.json is not JSON`);
    }
    const problem = manifestProblem(value, name);
    if (problem) throw new QumraError("failed-precondition", `snapshot '${name}' is refused: ${problem}`);
    return value as SnapshotManifest;
  }

  /** Every snapshot with a readable manifest, by name; damaged ones are listed by `onBad`. */
  list(onBad?: (name: string, problem: string) => void): SnapshotInfo[] {
    const out: SnapshotInfo[] = [];
    for (const n of this.names().sort()) {
      if (!SNAPSHOT_NAME.test(n)) continue;
      try {
        out.push({ manifest: this.manifest(n), diskBytes: this.diskBytes(n) });
      } catch (err) {
        onBad?.(n, (err as Error).message);
      }
    }
    return out;
  }

  delete(name: string): void {
    const dir = this.dir(name);
    if (!existsSync(dir)) throw notFound(`no snapshot '${name}' on this host`);
    // Renamed aside first, so a crash part-way never leaves a listed snapshot with files missing.
    const doomed = path.join(this.root, `.tmp-${name}-deleting-${process.pid}-${++this.seq}`);
    try {
      renameSync(dir, doomed);
      fsyncPath(this.root);
    } catch (err) {
      throw storageError(err, "delete the snapshot", dir);
    }
    rmSync(doomed, { recursive: true, force: true });
  }

  /**
   * Reads and checks every file against the manifest (sizes, sha256 of state, console and image,
   * CRC-32 of all of memory.bin) before anything uses it. FAILED_PRECONDITION naming the file that
   * does not match; the memory file is left open for the restore to read.
   */
  verify(name: string, manifest: SnapshotManifest, onProgress?: (done: number, total: number) => void): VerifiedSnapshot {
    const dir = this.dir(name);
    const damaged = (what: string) => new QumraError("failed-precondition", `snapshot '${name}' is corrupt or truncated: ${what}; nothing was changed`);
    const readSum = (sum: FileSum): Buffer => {
      let data: Buffer;
      try {
        data = readFileSync(path.join(dir, sum.file));
      } catch (err) {
        throw damaged(`${sum.file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      if (data.length !== sum.bytes) throw damaged(`${sum.file} is ${data.length} bytes, the manifest says ${sum.bytes}`);
      if (sha256(data) !== sum.sha256) throw damaged(`${sum.file} does not match its sha256 in the manifest`);
      return data;
    };
    const state = readSum(manifest.state);
    const consoleBytes = readSum(manifest.console);
    const image = manifest.image ? readSum(manifest.image) : undefined;
    const memFile = path.join(dir, manifest.memory.file);
    let fd: number;
    try {
      fd = openSync(memFile, "r");
    } catch (err) {
      throw damaged(`${manifest.memory.file} cannot be opened (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    try {
      const size = fstatSync(fd).size;
      if (size !== manifest.memory.bytes) throw damaged(`${manifest.memory.file} is ${size} bytes, the manifest says ${manifest.memory.bytes}`);
      const buf = Buffer.alloc(1 << 20);
      let crc = 0;
      for (let off = 0; off < size; ) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - off), off);
        if (n <= 0) throw damaged(`${manifest.memory.file} ended at ${off} of ${size} bytes`);
        crc = crc32(buf.subarray(0, n), crc);
        off += n;
        onProgress?.(off, size);
      }
      if (crc >>> 0 !== manifest.memory.crc32) throw damaged(`${manifest.memory.file} does not match its crc32 in the manifest`);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return { manifest, state, console: consoleBytes, image, memoryFd: fd };
  }

  private diskBytes(name: string): number {
    let total = 0;
    for (const f of readdirSync(this.dir(name))) total += statSync(path.join(this.dir(name), f)).blocks * 512;
    return total;
  }

  private names(): string[] {
    try {
      return readdirSync(this.root);
    } catch {
      return [];
    }
  }
}
