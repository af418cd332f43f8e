// The source side of a live migration: pre-copy rounds over KVM's dirty log, then pause, the last
// pages and the state, the RAM checksum of both helpers compared, and the switch. VmManager.migrate()
// lends it the VM (SourceVm) and decides what the outcome means for the VM's record.
import { QumraError } from "../errors.js";
import type { HelperClient } from "./helper-client.js";
import type { MigrationChannel, MigrationOptions, MigrationProgress, OnMigrationProgress, DisplayHint } from "./migration-channel.js";
import { PAGE_SIZE, type PageRun, type RamDirtySlot } from "./helper-protocol.js";
import { batchRuns, dirtyCount, dirtyRuns, rangeRuns } from "./page-runs.js";
import type { VmSpec } from "./types.js";

/** What the migration may do with the VM it moves. */
export interface SourceVm {
  vmId: string;
  spec: VmSpec;
  image?: Uint8Array;
  running: boolean;
  ask<T>(exchange: (client: HelperClient) => Promise<T>): Promise<T>;
  scrollback(): Buffer;
  /** Makes "the switch has begun" durable: from then on the destination may run the VM. */
  beginCommit(): void;
}

/** How a migration ended at the source. */
export type SourceOutcome =
  | { kind: "moved"; progress: MigrationProgress }
  /** Failed before the switch: the VM is as it was (running again if it ran). */
  | { kind: "failed"; error: unknown }
  /** Failed at the switch and the destination does not have the VM: it runs here again. */
  | { kind: "kept"; error: unknown }
  /** Failed at the switch and nobody can tell where the VM is: it stays paused here. */
  | { kind: "unknown"; error: unknown };

export class MigrationSource {
  private readonly began = Date.now();
  private bytesSent = 0;
  /** Bytes and milliseconds spent sending, for the transfer rate. */
  private sendMs = 0;
  private sendBytes = 0;
  private readonly progress: MigrationProgress;
  private display?: DisplayHint;

  constructor(
    private readonly vm: SourceVm,
    private readonly channel: MigrationChannel,
    private readonly opts: MigrationOptions,
    private readonly onProgress: OnMigrationProgress,
    private readonly migrationId: string,
    private readonly source: string,
  ) {
    this.progress = {
      phase: "preparing", round: 0, bytesSent: 0, memoryBytes: vm.spec.memoryBytes, dirtyBytes: 0, dirtyBytesPerSecond: 0,
      transferBytesPerSecond: 0, expectedDowntimeMs: 0, downtimeMs: 0, totalMs: 0, ramCrc32: 0,
    };
  }

  async run(): Promise<SourceOutcome> {
    const { vm, channel } = this;
    let paused = false;
    let logging = false;
    let committing = false;
    let pausedAt = 0;
    try {
      this.report({ phase: "preparing" });
      const ready = await channel.offer({ vmId: vm.vmId, spec: vm.spec, image: vm.image, running: vm.running, migrationId: this.migrationId, source: this.source });
      this.display = ready.display;
      await vm.ask((c) => c.ramDirtyLog(true));
      logging = true;

      // Round 1 sends every page holding data; each next round what the guest wrote meanwhile.
      let pending: RamDirtySlot[] | undefined;
      let runs = rangeRuns(await vm.ask((c) => c.ramMap()));
      for (let round = 1; ; round++) {
        const roundBegan = Date.now();
        await this.send(runs);
        const dirty = await vm.ask((c) => c.ramDirty());
        runs = dirtyRuns(dirty);
        pending = dirty;
        const dirtyBytes = dirtyCount(dirty) * PAGE_SIZE;
        const roundMs = Math.max(1, Date.now() - roundBegan);
        const expected = this.expectedDowntimeMs(dirtyBytes);
        this.report({ phase: "precopy", round, dirtyBytes, dirtyBytesPerSecond: Math.round((dirtyBytes * 1000) / roundMs), expectedDowntimeMs: expected });
        if (expected <= this.opts.maxDowntimeMs || round >= this.opts.maxRounds) break;
      }

      this.checkCancelled();
      pausedAt = Date.now();
      const parts: Record<string, number> = {};
      let mark = pausedAt;
      const lap = (name: string) => {
        const now = Date.now();
        parts[name] = now - mark;
        mark = now;
      };
      if (vm.running) {
        await vm.ask((c) => c.pause());
        paused = true;
      }
      lap("pause");
      // What the last round left plus what the guest wrote until the pause.
      const last = await vm.ask((c) => c.ramDirty());
      await this.send(dirtyRuns(orBitmaps(pending, last)));
      lap("lastPages");
      this.report({ phase: "stop-and-copy" });
      const blob = await vm.ask((c) => c.saveState());
      lap("saveState");
      // Sent first, hashed here while the destination loads and hashes its copy.
      const loaded = channel.sendState(blob, vm.scrollback());
      loaded.catch(() => undefined);
      const mine = await vm.ask((c) => c.ramChecksum());
      const theirs = await loaded;
      lap("stateLoadedAndChecksums");
      this.bytesSent += blob.length;
      if (mine.crc32 !== theirs.ramCrc32) {
        throw new QumraError("internal", `the destination's guest RAM (crc32 0x${hex(theirs.ramCrc32)}) is not this VM's (0x${hex(mine.crc32)}); nothing was switched`);
      }
      this.checkCancelled();
      vm.beginCommit();
      committing = true;
      lap("commitRecord");
      await channel.commit();
      lap("commit");
      const downtimeMs = Date.now() - pausedAt;
      return { kind: "moved", progress: this.report({ phase: "completed", downtimeMs, downtimePartsMs: parts, ramCrc32: mine.crc32, expectedDowntimeMs: 0 }) };
    } catch (error) {
      if (!committing) {
        channel.abort(error instanceof Error ? error.message : String(error));
        if (logging) await vm.ask((c) => c.ramDirtyLog(false)).catch(() => undefined);
        if (paused) await vm.ask((c) => c.resume());
        return { kind: "failed", error };
      }
      // The commit went out but its answer did not come back: only the destination can say.
      const where = await channel.probe();
      if (where === "present") return { kind: "moved", progress: this.report({ phase: "completed", downtimeMs: Date.now() - pausedAt, expectedDowntimeMs: 0 }) };
      if (where === "absent") {
        await vm.ask((c) => c.ramDirtyLog(false)).catch(() => undefined);
        if (paused) await vm.ask((c) => c.resume());
        return { kind: "kept", error };
      }
      return { kind: "unknown", error };
    }
  }

  /** Sends the runs in batches of one helper request each, within the bandwidth cap. */
  private async send(runs: readonly PageRun[]): Promise<void> {
    for (const batch of batchRuns(runs)) {
      this.checkCancelled();
      const t0 = Date.now();
      const data = await this.vm.ask((c) => c.readPages(batch));
      await this.channel.sendPages(batch, data);
      this.bytesSent += data.length;
      this.sendBytes += data.length;
      this.sendMs += Date.now() - t0;
      const cap = this.opts.maxBandwidth;
      if (cap > 0) {
        const dueMs = (this.sendBytes * 1000) / cap;
        if (dueMs > this.sendMs) {
          await sleep(dueMs - this.sendMs);
          this.sendMs = dueMs;
        }
      }
      this.progress.bytesSent = this.bytesSent;
    }
  }

  private rate(): number {
    return this.sendMs > 0 ? (this.sendBytes * 1000) / this.sendMs : 0;
  }

  /** The pause that sending `dirtyBytes` at the rate measured so far would take (the state adds a little). */
  private expectedDowntimeMs(dirtyBytes: number): number {
    const rate = this.rate();
    if (rate <= 0) return dirtyBytes === 0 ? 0 : Number.POSITIVE_INFINITY;
    return Math.ceil((dirtyBytes * 1000) / rate);
  }

  private checkCancelled(): void {
    if (this.opts.signal.aborted) throw new QumraError("failed-precondition", `the migration of VM '${this.vm.vmId}' was cancelled; the VM stays here`);
  }

  private report(p: Partial<MigrationProgress>): MigrationProgress {
    Object.assign(this.progress, p, {
      bytesSent: this.bytesSent,
      transferBytesPerSecond: Math.round(this.rate()),
      totalMs: Date.now() - this.began,
      display: this.display,
    });
    if (!Number.isFinite(this.progress.expectedDowntimeMs)) this.progress.expectedDowntimeMs = 0xffff_ffff;
    const copy = { ...this.progress };
    this.onProgress(copy);
    return copy;
  }
}

/** Bitwise OR of two sets of per-slot bitmaps (the same slots, in the same order). */
function orBitmaps(a: readonly RamDirtySlot[] | undefined, b: readonly RamDirtySlot[]): RamDirtySlot[] {
  if (!a) return [...b];
  return b.map((slot, i) => {
    const other = a[i];
    if (!other || other.gpa !== slot.gpa || other.pages !== slot.pages) return slot;
    const bitmap = new Uint8Array(slot.bitmap.length);
    for (let k = 0; k < bitmap.length; k++) bitmap[k] = slot.bitmap[k] | other.bitmap[k];
    return { gpa: slot.gpa, pages: slot.pages, bitmap };
  });
}

const hex = (n: number) => n.toString(16).padStart(8, "0");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
