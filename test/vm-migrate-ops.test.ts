// The helper's live migration ops on real KVM, through its control socket and inside its sandbox:
// RAM_DIRTY_LOG, RAM_DIRTY (what the running demo guest writes), READ_PAGES against READ_MEM,
// WRITE_PAGES into a second helper until both RAMs are equal, and what each op refuses.
import { describe, it, expect, afterAll } from "vitest";
import { HelperClient } from "../agent/src/vm/helper-client.js";
import { HelperError } from "../agent/src/vm/helper-errors.js";
import {
  GuestCommand,
  MsgType,
  PAGES_MAX,
  PAGE_SIZE,
  decodeMigrationStats,
  encodeReadPages,
  type PageRun,
  type RamDirtySlot,
} from "../agent/src/vm/helper-protocol.js";
import { batchRuns, dirtyCount, dirtyRuns, rangeRuns } from "../agent/src/vm/page-runs.js";
import { hasKvm } from "./helpers/kvm.js";
import { consoleLog, reapHelpers, spawnTracked } from "./helpers/helper-vm.js";

const MEM = 32 << 20;
const PAGES = MEM / PAGE_SIZE;

async function demo() {
  const { h } = await spawnTracked("qvmmig-", { demo: true, vcpus: 1, memoryBytes: MEM, fbWidth: 320, fbHeight: 200 });
  const c = await HelperClient.connect(h.controlPath, { secret: h.secret });
  return { h, c, con: consoleLog(c, 60_000) };
}

async function refusal(p: Promise<unknown>): Promise<HelperError> {
  try {
    await p;
  } catch (err) {
    return err as HelperError;
  }
  throw new Error("expected a refusal");
}

/** Indexes (gpa / PAGE_SIZE) of the pages the slots report dirty. */
function dirtyPages(slots: RamDirtySlot[]): Set<number> {
  const out = new Set<number>();
  for (const r of dirtyRuns(slots)) for (let i = 0; i < r.pages; i++) out.add(r.gpa / PAGE_SIZE + i);
  return out;
}

/** The runs' bytes through READ_MEM, one request per run. */
async function readMem(c: HelperClient, runs: PageRun[]): Promise<Buffer> {
  return Buffer.concat(await Promise.all(runs.map((r) => c.readMemory(r.gpa, r.pages * PAGE_SIZE))));
}

/** Copies the runs from one helper to another through READ_PAGES / WRITE_PAGES; returns the pages moved. */
async function copyRuns(from: HelperClient, to: HelperClient, runs: PageRun[]): Promise<number> {
  let pages = 0;
  for (const batch of batchRuns(runs)) {
    await to.writePages(batch, await from.readPages(batch));
    pages += batch.reduce((n, r) => n + r.pages, 0);
  }
  return pages;
}

describe.skipIf(!hasKvm)("helper live migration ops on real KVM", () => {
  afterAll(() => reapHelpers());

  it("RAM_DIRTY shows the pages the guest wrote since the last call, none while paused", async () => {
    const { c, con } = await demo();
    expect((await c.status()).sandbox?.seccomp).toBe("filter");
    const off = await refusal(c.ramDirty());
    expect(off.code).toBe("WRONG_STATE");
    expect(off.message).toMatch(/RAM dirty logging is off: turn it on with RAM_DIRTY_LOG first/);
    await c.start();
    await con.waitFor("qumra demo guest\n");
    expect(await c.ramDirtyLog(true)).toEqual({ enabled: true, pages: PAGES });
    expect(await c.ramDirtyLog(true)).toEqual({ enabled: true, pages: PAGES }); // idempotent
    await c.guestCommand(GuestCommand.PING, 1);
    await con.waitFor("pong 1\n");
    const first = await c.ramDirty();
    expect(first).toHaveLength(1); // 32 MiB: only the low slot
    expect(first[0]).toMatchObject({ gpa: 0, pages: PAGES });
    expect(dirtyCount(first)).toBeGreaterThan(0); // its stack and the 100 Hz tick counter at least

    // Paused: cleared once, then nothing is written.
    await c.pause();
    const untilPause = await c.ramDirty();
    expect(dirtyCount(await c.ramDirty())).toBe(0);

    // Every page whose bytes changed between two pauses is in the bitmap of the call after them.
    const data = rangeRuns(await c.ramMap());
    const before = await readMem(c, data);
    await c.resume();
    const mark = con.text().length;
    await c.guestCommand(GuestCommand.PING, 2);
    await con.waitFor("pong 2\n", mark);
    await c.pause();
    const after = await readMem(c, data);
    const second = await c.ramDirty();
    const dirty = dirtyPages(second);
    const changed = new Set<number>();
    let at = 0;
    for (const r of data)
      for (let i = 0; i < r.pages; i++, at += PAGE_SIZE)
        if (!before.subarray(at, at + PAGE_SIZE).equals(after.subarray(at, at + PAGE_SIZE))) changed.add(r.gpa / PAGE_SIZE + i);
    expect(changed.size).toBeGreaterThan(0);
    for (const page of changed) expect(dirty.has(page), `page 0x${page.toString(16)} changed but is not dirty`).toBe(true);
    // Only what the guest touched in between: a few pages of its image (stack, counters) and page tables.
    expect(dirty.size).toBeLessThan(64);
    for (const page of dirty) expect(page * PAGE_SIZE).toBeLessThan(2 << 20);

    // READ_PAGES of the dirty runs, of scattered runs, and of a whole batch equals READ_MEM of them.
    const runs = dirtyRuns(second);
    expect(await c.readPages(runs)).toEqual(await readMem(c, runs));
    const scattered = [{ gpa: 0x100000, pages: 3 }, { gpa: 0x9000, pages: 1 }, { gpa: MEM - PAGE_SIZE, pages: 1 }, { gpa: 0x1000, pages: 2 }];
    expect(await c.readPages(scattered)).toEqual(await readMem(c, scattered));
    const full = [{ gpa: 0x80000, pages: PAGES_MAX }];
    expect(await c.readPages(full)).toEqual(await readMem(c, full));

    expect(decodeMigrationStats(await c.stats())).toEqual({
      dirtyLog: true,
      dirtyCalls: 4,
      dirtyPages: dirtyCount(first) + dirtyCount(untilPause) + dirty.size,
      pagesRead: runs.reduce((n, r) => n + r.pages, 0) + 7 + PAGES_MAX,
      pagesWritten: 0,
    });

    // Off: the bitmaps go, RAM_DIRTY is refused again; off twice is off.
    expect(await c.ramDirtyLog(false)).toEqual({ enabled: false, pages: PAGES });
    expect(await c.ramDirtyLog(false)).toEqual({ enabled: false, pages: PAGES });
    expect((await refusal(c.ramDirty())).code).toBe("WRONG_STATE");
    expect(decodeMigrationStats(await c.stats()).dirtyLog).toBe(false);
    // On again: a fresh log, nothing written while paused.
    await c.ramDirtyLog(true);
    expect(dirtyCount(await c.ramDirty())).toBe(0);
    await c.stop(0);
  });

  it("copies a running guest's RAM into a created helper: after the last dirty set both checksums are equal and it runs on there", async () => {
    const a = await demo();
    const b = await demo();
    await a.c.start();
    await a.con.waitFor("qumra demo guest\n");
    await a.c.consoleWrite("t"); // a heartbeat: the guest prints "tick N" once a second
    await a.con.waitFor("tick 1\n");

    await a.c.ramDirtyLog(true);
    let moved = await copyRuns(a.c, b.c, rangeRuns(await a.c.ramMap()));
    expect((await refusal(a.c.writePages([{ gpa: 0, pages: 1 }], Buffer.alloc(PAGE_SIZE)))).code).toBe("WRONG_STATE"); // a is running
    let dirtySum = 0;
    for (let round = 0; round < 2; round++) {
      const slots = await a.c.ramDirty();
      dirtySum += dirtyCount(slots);
      moved += await copyRuns(a.c, b.c, dirtyRuns(slots));
    }
    await a.c.pause();
    const last = await a.c.ramDirty();
    dirtySum += dirtyCount(last);
    moved += await copyRuns(a.c, b.c, dirtyRuns(last));

    const [ca, cb] = await Promise.all([a.c.ramChecksum(), b.c.ramChecksum()]);
    expect(cb.crc32).toBe(ca.crc32);
    expect((await b.c.status()).state).toBe("created"); // pages went in without running it
    const sa = decodeMigrationStats(await a.c.stats());
    const sb = decodeMigrationStats(await b.c.stats());
    expect(sa).toMatchObject({ dirtyLog: true, dirtyCalls: 3, dirtyPages: dirtySum, pagesRead: moved, pagesWritten: 0 });
    expect(sb).toMatchObject({ dirtyLog: false, dirtyCalls: 0, pagesRead: 0, pagesWritten: moved });

    // With the rest of the VM (the state blob) it goes on where the source stopped.
    await b.c.loadState(await a.c.saveState());
    const ticks = [...(await a.c.consoleRead(4096)).toString("latin1").matchAll(/tick (\d+)\n/g)].map((m) => Number(m[1]));
    const next = `tick ${(ticks.at(-1) ?? 0) + 1}\n`;
    await b.c.resume();
    await b.con.waitFor(next);
    await a.c.stop(0);
    await b.c.stop(0);
  });

  it("refuses bad runs, bad payloads and RAM_DIRTY with logging off, with nothing written", async () => {
    const { c } = await demo();
    const code = async (p: Promise<unknown>) => (await refusal(p)).code;
    const read = (runs: PageRun[]) => c.readPages(runs);
    expect(await code(read([{ gpa: MEM, pages: 1 }]))).toBe("OUT_OF_RANGE"); // past RAM
    expect(await code(read([{ gpa: MEM - PAGE_SIZE, pages: 2 }]))).toBe("OUT_OF_RANGE"); // crosses its end
    expect(await code(read([{ gpa: 0xd000_0000, pages: 1 }]))).toBe("OUT_OF_RANGE"); // the framebuffer is not RAM
    const outside = await refusal(read([{ gpa: 0, pages: 1 }, { gpa: 0x1_0000_0000, pages: 1 }]));
    expect(outside.message).toMatch(/run 1: \[0x100000000, \+1 pages\) is not inside one RAM slot/);
    expect(await code(read([{ gpa: 0x1008, pages: 1 }]))).toBe("INVALID_ARGUMENT"); // not page-aligned
    expect(await code(read([{ gpa: 0x1000, pages: 0 }]))).toBe("INVALID_ARGUMENT");
    expect(await code(read([]))).toBe("INVALID_ARGUMENT");
    const big = await refusal(read([{ gpa: 0, pages: PAGES_MAX }, { gpa: 0x200000, pages: 1 }]));
    expect(big.code).toBe("TOO_LARGE");
    expect(big.message).toMatch(/more than 256 pages in one request/);
    expect(await code(c.request(MsgType.READ_PAGES, Buffer.concat([encodeReadPages([{ gpa: 0, pages: 1 }]), Buffer.alloc(1)])))).toBe("BAD_MESSAGE");
    expect(await code(c.request(MsgType.READ_PAGES, Buffer.alloc(2)))).toBe("BAD_MESSAGE");

    // A write with one bad run writes none of them; a short one is refused whole.
    const page = Buffer.alloc(PAGE_SIZE, 0x5a);
    const kept = await c.readMemory(0x200000, PAGE_SIZE);
    expect(await code(c.writePages([{ gpa: 0x200000, pages: 1 }, { gpa: MEM, pages: 1 }], Buffer.concat([page, page])))).toBe("OUT_OF_RANGE");
    expect(await code(c.writePages([{ gpa: 0x200000, pages: 2 }], page))).toBe("BAD_MESSAGE");
    expect(await c.readMemory(0x200000, PAGE_SIZE)).toEqual(kept);
    await c.writePages([{ gpa: 0x200000, pages: 1 }], page);
    expect(await c.readMemory(0x200000, PAGE_SIZE)).toEqual(page);

    expect(await code(c.request(MsgType.RAM_DIRTY_LOG, Buffer.from([2, 0, 0, 0])))).toBe("INVALID_ARGUMENT");
    expect(await code(c.request(MsgType.RAM_DIRTY_LOG, Buffer.alloc(0)))).toBe("BAD_MESSAGE");
    expect(await code(c.ramDirty())).toBe("WRONG_STATE");
    expect(decodeMigrationStats(await c.stats())).toEqual({ dirtyLog: false, dirtyCalls: 0, dirtyPages: 0, pagesRead: 0, pagesWritten: 1 });
    await c.stop(0);
  });
});
