// The framebuffer device of qumra-vmm and the demo guest's desktop, on the real /dev/kvm through the
// TypeScript client. Waits on serial markers and on the framebuffer file's contents (with generous
// deadlines), never on guest speed: guest code is emulated on kvm-pvm hosts.
import { spawnSync } from "node:child_process";
import { existsSync, openSync, readSync, closeSync, statSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hasKvm } from "./helpers/kvm.js";
import { consoleLog, reapHelpers, spawnTracked, type TrackedHelper, type ConsoleLog } from "./helpers/helper-vm.js";
import { HelperClient } from "../agent/src/vm/helper-client.js";
import { GuestCommand, type DirtyPages, type DisplayInfo } from "../agent/src/vm/helper-protocol.js";
import { isAlive, vmmBinaryPath, type SpawnedHelper } from "../agent/src/vm/helper-process.js";




afterAll(reapHelpers);

async function startDemo(fb?: { width: number; height: number }, memoryBytes = 32 << 20): Promise<{ h: TrackedHelper; c: HelperClient; con: ConsoleLog; info: DisplayInfo; dir: string }> {
  const { h, dir } = await spawnTracked("qvmm-fb-", { demo: true, vcpus: 1, memoryBytes, fbWidth: fb?.width, fbHeight: fb?.height });
  const c = await HelperClient.connect(h.controlPath, { secret: h.secret });
  const con = consoleLog(c, 60_000);
  const info = await c.displayInfo();
  await c.start();
  await con.waitFor("keys:", 0, 120_000); // the desktop is drawn before the banner
  return { h, c, con, info, dir };
}

/** Reads the whole framebuffer file as u32 pixels (0x00RRGGBB). */
function readPixels(info: DisplayInfo): Uint32Array {
  const buf = Buffer.alloc(info.stride * info.height);
  const fd = openSync(info.path, "r");
  try {
    readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  return new Uint32Array(buf.buffer, buf.byteOffset, buf.length / 4);
}

const px = (info: DisplayInfo, p: Uint32Array, x: number, y: number): number => p[(y * info.stride) / 4 + x] & 0xffffff;

function dirtySet(d: DirtyPages): Set<number> {
  const s = new Set<number>();
  for (let i = 0; i < d.pages; i++) if ((d.bitmap[i >> 3] >> (i & 7)) & 1) s.add(i);
  return s;
}

/** Polls the framebuffer file until pred holds (the guest draws after its wake-up). */
async function waitPixels(info: DisplayInfo, pred: (p: Uint32Array) => boolean, what: string, ms = 60_000): Promise<Uint32Array> {
  const end = Date.now() + ms;
  for (;;) {
    const p = readPixels(info);
    if (pred(p)) return p;
    if (Date.now() > end) throw new Error(`framebuffer never showed ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitExit(pid: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (isAlive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  expect(isAlive(pid)).toBe(false);
}

describe.skipIf(!hasKvm)("qumra-vmm framebuffer and the demo desktop on real KVM", () => {
  it("refuses bad framebuffer sizes with a clear message (exit status 2)", () => {
    for (const [flag, value, msg] of [
      ["--fb-width", "5000", "--fb-width must be 64..4096"],
      ["--fb-width", "63", "--fb-width must be 64..4096"],
      ["--fb-height", "2161", "--fb-height must be 64..2160"],
      ["--fb-height", "abc", "bad number"],
    ]) {
      const r = spawnSync(vmmBinaryPath(), ["--control", "/tmp/qvmm-never.sock", "--demo", flag, value], { encoding: "utf8" });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(msg);
    }
  });

  it("reports the geometry of a non-default size, backs it with a file and shows a desktop", async () => {
    const { h, c, info, dir } = await startDemo({ width: 640, height: 480 });
    expect(info).toMatchObject({ width: 640, height: 480, stride: 2560, format: "bgrx", gpa: 0xd0000000, pages: 300, size: 640 * 480 * 4 });
    expect(info.path).toBe(path.join(dir, "framebuffer"));
    expect(statSync(info.path).size).toBe(640 * 480 * 4);

    const p = readPixels(info);
    const colors = new Set(p);
    let black = 0;
    for (const v of p) if ((v & 0xffffff) === 0) black++;
    expect(colors.size).toBeGreaterThan(500); // gradients, text, photo, cursor
    expect(black / p.length).toBeLessThan(0.2);

    expect(await c.stop(5000)).toEqual({ forced: false, exitStatus: 0 });
    await waitExit(h.pid);
    expect(existsSync(info.path)).toBe(false);
  });

  it("reports the dirty pages of a known small change and of a full-screen change", async () => {
    const { c, con, info } = await startDemo({ width: 640, height: 480 });
    await c.dirty(); // clears what the boot drew

    let from = con.text().length;
    await c.consoleWrite("d");
    await con.waitFor("drawn 1\n", from);
    const d = dirtySet(await c.dirty());
    for (let y = 64; y < 164; y++) {
      const first = Math.floor((y * info.stride + 64 * 4) / 4096);
      const last = Math.floor((y * info.stride + 264 * 4 - 1) / 4096);
      for (let pg = first; pg <= last; pg++) expect(d.has(pg), `page ${pg} (row ${y})`).toBe(true);
    }
    expect(d.size).toBeLessThan(info.pages / 2);
    let p = readPixels(info);
    expect(p[(64 * info.stride) / 4 + 64]).toBe(1); // the stamped counter

    from = con.text().length;
    await c.guestCommand(GuestCommand.DRAW);
    await con.waitFor("drawn 2\n", from);
    p = readPixels(info);
    expect(p[(64 * info.stride) / 4 + 64]).toBe(2);
    await c.dirty();

    from = con.text().length;
    await c.consoleWrite("f");
    await con.waitFor("full 1\n", from);
    const f = dirtySet(await c.dirty());
    expect(f.size).toBeGreaterThanOrEqual(Math.floor(info.pages * 0.95));

    from = con.text().length;
    await c.guestCommand(GuestCommand.FULL);
    await con.waitFor("full 2\n", from);
    expect(dirtySet(await c.dirty()).size).toBeGreaterThanOrEqual(Math.floor(info.pages * 0.95));

    const stats = await c.stats();
    expect(stats.devices.framebuffer.dirtyCalls).toBeGreaterThanOrEqual(5);
    await c.stop(5000);
  });

  it("moves the cursor with POINTER and shows pressed buttons", async () => {
    const { c, info } = await startDemo({ width: 640, height: 480 });
    const before = readPixels(info);
    // The cursor starts at the centre: its tip is black, its inside white.
    expect(px(info, before, 320, 240)).toBe(0);
    expect(px(info, before, 321, 242)).toBe(0xffffff);
    const bgAt = px(info, before, 581, 262);

    await c.pointer(580, 260, 0);
    let p = await waitPixels(info, (q) => px(info, q, 581, 262) === 0xffffff && px(info, q, 580, 260) === 0, "the cursor at (580,260)");
    expect(px(info, p, 321, 242)).not.toBe(0xffffff); // the old place is restored
    expect(bgAt).not.toBe(0xffffff);

    await c.pointer(580, 260, 1); // left button: the cursor turns yellow
    p = await waitPixels(info, (q) => px(info, q, 581, 262) === 0xffdc00, "the pressed cursor");

    // A burst of moves costs the guest at most one wake-up each time it reads the registers.
    for (let i = 0; i < 50; i++) await c.pointer(100 + i, 400, 0);
    await waitPixels(info, (q) => px(info, q, 149, 400) === 0 && px(info, q, 150, 402) === 0xffffff, "the cursor at (149,400)");
    const fbStats = (await c.stats()).devices.framebuffer;
    expect(fbStats.pointerUpdates).toBe(52);
    expect(fbStats.pointerDoorbells).toBeLessThanOrEqual(52);
    void p;
    await c.stop(5000);
  });

  it("echoes keys to serial and types them into the terminal window", async () => {
    const { c, con, info } = await startDemo({ width: 640, height: 480 });
    // Terminal window: x 128..512, y 288..432 at 640x480.
    const region = (q: Uint32Array): number[] => {
      const out: number[] = [];
      for (let y = 290; y < 430; y++) for (let x = 130; x < 510; x++) out.push(px(info, q, x, y));
      return out;
    };
    const green = (q: Uint32Array): number => region(q).filter((v) => v === 0x50f078).length;
    const before = readPixels(info);
    const greenBefore = green(before);

    const from = con.text().length;
    expect(await c.keyboard(Uint8Array.from([0x23, 0xa3, 0x17, 0x97]))).toBe(4); // "hi"
    for (const code of ["0x23", "0xa3", "0x17", "0x97"]) await con.waitFor(`kbd ${code}\n`, from);
    const after = await waitPixels(info, (q) => green(q) > greenBefore + 10, "typed glyphs in the terminal");
    expect(region(after)).not.toEqual(region(before));
    await c.stop(5000);
  });

  it("runs a 4096x2160 framebuffer beside RAM that reaches above 4 GiB", async () => {
    const { h, c, con, info } = await startDemo({ width: 4096, height: 2160 }, 3584 * 1024 * 1024);
    expect(info).toMatchObject({ width: 4096, height: 2160, stride: 16384, pages: 8640, size: 4096 * 2160 * 4 });
    expect(statSync(info.path).size).toBe(35_389_440);
    const p = readPixels(info);
    expect(px(info, p, 4095, 2159)).not.toBe(0); // the taskbar reaches the last pixel
    // RAM above 4 GiB is still RAM (slot 1), the framebuffer is not guest RAM.
    await expect(c.readMemory(0x1_0000_0000n, 16)).resolves.toHaveLength(16);
    await expect(c.readMemory(0xd000_0000n, 16)).rejects.toMatchObject({ code: "OUT_OF_RANGE" });
    const from = con.text().length;
    await c.consoleWrite("d");
    await con.waitFor("drawn 1\n", from);
    expect(readPixels(info)[(64 * info.stride) / 4 + 64]).toBe(1);
    expect(await c.stop(5000)).toEqual({ forced: false, exitStatus: 0 });
    await waitExit(h.pid);
  }, 180_000);
});
