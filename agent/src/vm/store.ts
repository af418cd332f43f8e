// Persistence: one folder per VM in the state dir with vm.json (atomic: temp file, fsync, rename), the image
// and the helper's control secret.
import { mkdirSync, openSync, writeSync, fsyncSync, fchmodSync, closeSync, renameSync, readFileSync, readdirSync, rmSync, existsSync } from "node:fs";
import path from "node:path";
import type { VmRecord } from "./types.js";

export class VmStore {
  private readonly root: string;

  constructor(stateDir: string) {
    this.root = path.join(stateDir, "vms");
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
  }

  folder(vmId: string): string {
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
    mkdirSync(this.folder(vmId), { recursive: true, mode: 0o700 });
  }

  save(record: VmRecord): void {
    mkdirSync(this.folder(record.vmId), { recursive: true, mode: 0o700 });
    writeAtomic(path.join(this.folder(record.vmId), "vm.json"), JSON.stringify(record, null, 2));
  }

  saveImage(vmId: string, image: Uint8Array): void {
    mkdirSync(this.folder(vmId), { recursive: true, mode: 0o700 });
    writeAtomic(this.imagePath(vmId), image);
  }

  /** Every saved record; unreadable ones are reported, not fatal. */
  loadAll(onError: (vmId: string, err: Error) => void): VmRecord[] {
    const records: VmRecord[] = [];
    for (const vmId of readdirSync(this.root)) {
      const file = path.join(this.root, vmId, "vm.json");
      if (!existsSync(file)) continue;
      try {
        records.push(JSON.parse(readFileSync(file, "utf8")) as VmRecord);
      } catch (err) {
        onError(vmId, err as Error);
      }
    }
    return records;
  }

  remove(vmId: string): void {
    rmSync(this.folder(vmId), { recursive: true, force: true });
  }
}

/** Writes a file so that a crash leaves either the old or the new content, never a mix. */
export function writeAtomic(file: string, data: string | Uint8Array): void {
  const temp = `${file}.tmp-${process.pid}`;
  const fd = openSync(temp, "w", 0o600);
  try {
    fchmodSync(fd, 0o600); // a temp file left by a crash keeps its old mode otherwise

    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
  const dir = openSync(path.dirname(file), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
