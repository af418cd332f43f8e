// The audit trail: STATE_DIR/audit.log, one JSON line per entry, on disk (fsynced) before record()
// resolves, rotated by size into audit.log.1 … audit.log.N (oldest dropped).
import { EventEmitter } from "node:events";
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../logger.js";
import type { AuditEntry, AuditSink } from "./audit-entry.js";

/** An entry as stored: with the time it was recorded (ISO 8601, UTC). */
export type AuditRecord = AuditEntry & { time: string };

export interface AuditLogOptions {
  stateDir: string;
  logger: Logger;
  /** Rotate when the current file would grow past this (default 16 MiB). */
  maxBytes?: number;
  /** Rotated files kept besides the current one (default 4). */
  maxFiles?: number;
}

export const AUDIT_FILE = "audit.log";

interface Pending {
  line: string;
  record: AuditRecord;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class AuditLog implements AuditSink {
  readonly path: string;
  private readonly maxBytes: number;
  private readonly maxFiles: number;
  private readonly logger: Logger;
  private readonly emitter = new EventEmitter();
  private file: FileHandle | undefined;
  private size = 0;
  private queue: Pending[] = [];
  /** Lines of the batch being written: in the file perhaps, but not yet announced to followers. */
  private inFlight = new Set<string>();
  private writing = false;
  private closed = false;

  constructor(options: AuditLogOptions) {
    this.path = path.join(options.stateDir, AUDIT_FILE);
    this.maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.maxFiles = options.maxFiles ?? 4;
    this.logger = options.logger;
    this.emitter.setMaxListeners(0);
  }

  /** Appends one entry; resolves once it is fsynced. Entries recorded together share one fsync. */
  record(entry: AuditEntry): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the audit log is closed"));
    const record: AuditRecord = { time: new Date().toISOString(), ...entry };
    const line = `${JSON.stringify(record)}\n`;
    return new Promise((resolve, reject) => {
      this.queue.push({ line, record, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  /** The retained records, oldest first, optionally only one VM's and only the last `tail`. */
  read(filter: { vmId?: string; tail?: number } = {}): AuditRecord[] {
    return this.readFiles(filter, new Set());
  }

  /**
   * The retained records, then every new one through `listener`, each exactly once: a record whose
   * write is in flight is left to the listener. Returns the records and the unsubscribe function.
   */
  readThenFollow(filter: { vmId?: string; tail?: number }, listener: (record: AuditRecord) => void): { retained: AuditRecord[]; stop: () => void } {
    this.emitter.on("record", listener);
    return { retained: this.readFiles(filter, this.inFlight), stop: () => this.emitter.off("record", listener) };
  }

  private readFiles(filter: { vmId?: string; tail?: number }, skip: Set<string>): AuditRecord[] {
    const records: AuditRecord[] = [];
    for (let n = this.maxFiles; n >= 0; n--) {
      const file = n === 0 ? this.path : `${this.path}.${n}`;
      if (!existsSync(file)) continue;
      for (const line of readFileSync(file, "utf8").split("\n")) {
        if (skip.has(`${line}\n`)) continue;
        const record = parseLine(line);
        if (record && (!filter.vmId || record.vm_id === filter.vmId)) records.push(record);
      }
    }
    return filter.tail ? records.slice(-filter.tail) : records;
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.writing) await new Promise((r) => setImmediate(r));
    await this.file?.close();
    this.file = undefined;
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        const bytes = Buffer.from(batch.map((p) => p.line).join(""));
        const file = await this.fileFor(bytes.length);
        this.inFlight = new Set(batch.map((p) => p.line));
        // One write(2) may take fewer bytes than asked (a nearly full disk): go on until all are in.
        for (let off = 0; off < bytes.length; ) {
          const { bytesWritten } = await file.write(bytes, off, bytes.length - off);
          if (bytesWritten <= 0) throw Object.assign(new Error(`short write to ${this.path}: ${off} of ${bytes.length} bytes`), { code: "ENOSPC" });
          off += bytesWritten;
        }
        await file.sync();
        this.size += bytes.length;
        this.inFlight = new Set();
        for (const p of batch) {
          p.resolve();
          this.emitter.emit("record", p.record);
        }
      } catch (err) {
        this.inFlight = new Set();
        this.logger.error({ err, path: this.path }, "cannot write the audit log");
        // A failed write may have left part of a line: the next file open starts a fresh line.
        await this.file?.close().catch(() => undefined);
        this.file = undefined;
        for (const p of batch) p.reject(err as Error);
      }
    }
    this.writing = false;
  }

  /** The open current file, rotated first when `adding` bytes would take it past maxBytes. */
  private async fileFor(adding: number): Promise<FileHandle> {
    if (this.file && this.size > 0 && this.size + adding > this.maxBytes) {
      await this.file.close();
      this.file = undefined;
      this.rotate();
    }
    if (!this.file) {
      this.endTornLine();
      const created = !existsSync(this.path);
      this.file = await open(this.path, "a", 0o600);
      this.size = (await this.file.stat()).size;
      if (created) syncDir(path.dirname(this.path));
    }
    return this.file;
  }

  /** audit.log → audit.log.1 → … → audit.log.maxFiles; the oldest is dropped. */
  private rotate(): void {
    rmSync(`${this.path}.${this.maxFiles}`, { force: true });
    for (let n = this.maxFiles - 1; n >= 1; n--) {
      if (existsSync(`${this.path}.${n}`)) renameSync(`${this.path}.${n}`, `${this.path}.${n + 1}`);
    }
    if (this.maxFiles > 0) renameSync(this.path, `${this.path}.1`);
    else rmSync(this.path, { force: true });
    syncDir(path.dirname(this.path));
    this.logger.info({ path: this.path, keep: this.maxFiles }, "audit log rotated");
  }

  /** A crash in the middle of a write leaves a line without its newline: end it so the next line stands alone. */
  private endTornLine(): void {
    if (!existsSync(this.path)) return;
    const fd = openSync(this.path, "r+");
    try {
      const { size } = fstatSync(fd);
      const last = Buffer.alloc(1);
      if (size > 0 && readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a) {
        writeSync(fd, "\n", size);
      }
    } finally {
      closeSync(fd);
    }
  }
}

/** Makes renames and new files in `dir` durable. */
function syncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function parseLine(line: string): AuditRecord | undefined {
  if (!line) return undefined;
  try {
    const value = JSON.parse(line) as AuditRecord;
    return typeof value === "object" && value && typeof value.method === "string" ? value : undefined;
  } catch {
    return undefined; // a torn line from a crash mid-write: that call was never answered
  }
}
