// Persistence: one folder per VM in the state dir with vm.json (atomic: temp file, fsync, rename), the image
// and the helper's control secret. Records are schema-checked on load; a bad one is moved to quarantine/.
// Every path is built from a checked VM id, so nothing outside the state dir is ever touched.
import { mkdirSync, openSync, writeSync, fsyncSync, fchmodSync, closeSync, renameSync, readFileSync, readdirSync, rmSync, existsSync, unlinkSync, lstatSync } from "node:fs";
import path from "node:path";
import type { VmRecord } from "./types.js";
import { VM_ID } from "./spec.js";
import { recordProblem, asRecord } from "./record-schema.js";
import { shortWrite, storageError } from "./storage-error.js";

/** A vm.json that failed its check, moved aside (or left, when the state dir cannot be written). */
export interface BadRecord {
  /** The folder's name under vms/ (the VM id it claims by its place). */
  name: string;
  problem: string;
  /** Where it was moved; empty when moving it failed. */
  quarantinedAs: string;
}

export class VmStore {
  private readonly root: string;
  readonly quarantineDir: string;

  constructor(private readonly stateDir: string) {
    this.root = path.join(stateDir, "vms");
    this.quarantineDir = path.join(stateDir, "quarantine");
    try {
      mkdirSync(this.root, { recursive: true, mode: 0o700 });
    } catch {
      /* a read-only or full state dir: the agent starts degraded (manager.ts) */
    }
  }

  folder(vmId: string): string {
    // The one place a VM id becomes a path: refuse anything that is not an id.
    if (!VM_ID.test(vmId)) throw new Error(`refusing a path for the invalid VM id ${JSON.stringify(vmId).slice(0, 80)}`);
    return path.join(this.root, vmId);
  }

  imagePath(vmId: string): string {
    return path.join(this.folder(vmId), "image.bin");
  }

  /** The helper's control-socket secret (control-secret.ts); removed with the folder. */
  secretPath(vmId: string): string {
    return path.join(this.folder(vmId), "control.secret");
  }

  /** Makes the VM's folder (before its first file). */
  prepare(vmId: string): void {
    const dir = this.folder(vmId);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw storageError(err, "create the VM folder", dir);
    }
  }

  save(record: VmRecord): void {
    this.prepare(record.vmId);
    writeAtomic(path.join(this.folder(record.vmId), "vm.json"), JSON.stringify(record, null, 2));
  }

  saveImage(vmId: string, image: Uint8Array): void {
    this.prepare(vmId);
    writeAtomic(this.imagePath(vmId), image);
  }

  /** Names of folders under vms/ that hold no vm.json (a create interrupted before its first write). */
  emptyFolders(): string[] {
    return this.names().filter((n) => VM_ID.test(n) && !existsSync(path.join(this.root, n, "vm.json")));
  }

  /** Every saved record that passes its check; the others are quarantined and returned in `bad`. */
  loadAll(onBad: (bad: BadRecord) => void): VmRecord[] {
    const records: VmRecord[] = [];
    for (const name of this.names()) {
      const dir = path.join(this.root, name);
      const file = path.join(dir, "vm.json");
      if (!lstatSync(dir).isDirectory()) {
        onBad(this.quarantine(name, "it is not a folder"));
        continue;
      }
      if (!existsSync(file)) continue;
      let value: unknown;
      let problem: string | undefined;
      try {
        value = JSON.parse(readFileSync(file, "utf8"));
        problem = recordProblem(value, name);
      } catch (err) {
        problem = `it cannot be read: ${(err as Error).message}`;
      }
      if (problem) onBad(this.quarantine(name, problem));
      else records.push(asRecord(value));
    }
    return records;
  }

  /** Removes temp files a crash left (`*.tmp-PID`) in the state dir and the VM folders. */
  cleanTemp(onRemoved: (file: string) => void): void {
    const dirs = [this.stateDir, ...this.names().filter((n) => VM_ID.test(n)).map((n) => path.join(this.root, n))];
    for (const dir of dirs) {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      for (const n of names.filter((f) => /\.tmp-\d+$/.test(f))) {
        try {
          unlinkSync(path.join(dir, n));
          onRemoved(path.join(dir, n));
        } catch {
          /* read-only: left for a later start */
        }
      }
    }
  }

  remove(vmId: string): void {
    const dir = this.folder(vmId);
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      throw storageError(err, "remove the VM folder", dir);
    }
  }

  private names(): string[] {
    try {
      return readdirSync(this.root);
    } catch {
      return [];
    }
  }

  /** Moves vms/NAME to quarantine/NAME-TIME; a state dir that cannot be written leaves it in place. */
  private quarantine(name: string, problem: string): BadRecord {
    const safe = name.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 80);
    const target = path.join(this.quarantineDir, `${safe}-${new Date().toISOString().replace(/[:.]/g, "-")}`);
    try {
      mkdirSync(this.quarantineDir, { recursive: true, mode: 0o700 });
      renameSync(path.join(this.root, name), target);
      return { name, problem, quarantinedAs: target };
    } catch {
      return { name, problem, quarantinedAs: "" };
    }
  }
}

/**
 * Writes a file so that a crash leaves either the old or the new content, never a mix. Every byte is
 * checked written (writeSync may write less); any failure removes the temp file and throws a
 * storageError naming the file and errno, with the old content untouched.
 */
export function writeAtomic(file: string, data: string | Uint8Array): void {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  const temp = `${file}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = openSync(temp, "w", 0o600);
    fchmodSync(fd, 0o600); // a temp file left by a crash keeps its old mode otherwise
    for (let off = 0; off < bytes.length; ) {
      const n = writeSync(fd, bytes, off, bytes.length - off);
      if (n <= 0) throw shortWrite(temp, off, bytes.length);
      off += n;
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, file);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      /* not made, or a read-only dir */
    }
    throw storageError(err, "write", file);
  }
  try {
    const dir = openSync(path.dirname(file), "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch (err) {
    throw storageError(err, "sync the folder of", file);
  }
}
