// Pages to move during a live migration as runs for READ_PAGES / WRITE_PAGES (helper-protocol.ts):
// the set bits of RAM_DIRTY's bitmaps, or RAM_MAP's ranges, as runs of whole pages, and those runs
// packed into requests of at most PAGES_MAX pages each. Pure functions, no I/O.
import { PAGES_MAX, PAGE_SIZE, type PageRun, type RamDirtySlot, type RamRange } from "./helper-protocol.js";

/** The dirty pages of every slot as runs of consecutive pages, in address order. */
export function dirtyRuns(slots: readonly RamDirtySlot[]): PageRun[] {
  const runs: PageRun[] = [];
  for (const slot of slots) {
    let start = -1;
    for (let i = 0; i <= slot.pages; i++) {
      const set = i < slot.pages && (slot.bitmap[i >> 3] & (1 << (i & 7))) !== 0;
      if (set && start < 0) start = i;
      if (!set && start >= 0) {
        runs.push({ gpa: slot.gpa + start * PAGE_SIZE, pages: i - start });
        start = -1;
      }
    }
  }
  return runs;
}

/** RAM_MAP's ranges as page runs (a partial page at either end counts whole). */
export function rangeRuns(ranges: readonly RamRange[]): PageRun[] {
  return ranges.map((r) => {
    const first = Math.floor(r.gpa / PAGE_SIZE);
    const end = Math.ceil((r.gpa + r.length) / PAGE_SIZE);
    return { gpa: first * PAGE_SIZE, pages: end - first };
  }).filter((r) => r.pages > 0);
}

/** Runs packed in order into requests of at most `max` pages each; a run that does not fit is split. */
export function batchRuns(runs: readonly PageRun[], max: number = PAGES_MAX): PageRun[][] {
  const batches: PageRun[][] = [];
  let batch: PageRun[] = [];
  let room = max;
  for (const run of runs) {
    for (let gpa = run.gpa, left = run.pages; left > 0; ) {
      const take = Math.min(left, room);
      batch.push({ gpa, pages: take });
      gpa += take * PAGE_SIZE;
      left -= take;
      room -= take;
      if (room === 0) {
        batches.push(batch);
        batch = [];
        room = max;
      }
    }
  }
  if (batch.length) batches.push(batch);
  return batches;
}

/** How many pages the slots report dirty. */
export function dirtyCount(slots: readonly RamDirtySlot[]): number {
  let n = 0;
  for (const s of slots) for (const byte of s.bitmap) for (let b = byte; b; b &= b - 1) n++;
  return n;
}
