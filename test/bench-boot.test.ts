// The fast parts of `qumra bench boot`: the milestone clock over console output cut at awkward places,
// and the qemu yardstick's end when qemu refuses the kernel. A full boot is not run here.
import { describe, it, expect, afterAll } from "vitest";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { BOOT_MILESTONES, MilestoneClock } from "../bench/boot-milestones.js";
import { bootQemu, qemuBootMissing } from "../bench/boot-qemu.js";
import { cleanup, runCli, tempDir } from "./helpers/agent.js";

/** A kernel log as a stock 6.1 kernel prints it on ttyS0 (abridged), then the test initramfs's marker. */
const LOG = [
  "[    0.000000] Linux version 6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3",
  "[    0.000000] Command line: console=ttyS0 earlyprintk=ttyS0 noxsave",
  "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
  "[   27.881548] Kernel command line: console=ttyS0 earlyprintk=ttyS0 noxsave",
  "[   31.971532] Memory: 212956K/261752K available (14343K kernel code, 2327K rwdata)",
  "[   70.587350] printk: console [ttyS0] enabled",
  "[   70.887610] x86/fpu: x87 FPU will use FXSAVE",
  "[   71.000000] smp: Brought up 1 node, 1 CPU",
  "QUMRA-INIT-OK",
].map((l) => `${l}\r\n`).join("");

describe("MilestoneClock", () => {
  it("sees every milestone once, in boot order, when the log comes in one chunk", () => {
    const clock = new MilestoneClock(1000);
    clock.feed(LOG, 1500);
    expect(Object.keys(clock.reached())).toEqual(BOOT_MILESTONES.map((m) => m.name));
    expect(Object.values(clock.reached()).every((ms) => ms === 500)).toBe(true);
    expect(clock.furthest()).toBe("init marker");
    expect(clock.text()).toBe(LOG);
  });

  it("matches milestones cut across chunks, timed at the chunk that completes them", () => {
    for (const size of [1, 2, 3, 7, 13, 64]) {
      const clock = new MilestoneClock(0);
      for (let at = 0; at < LOG.length; at += size) clock.feed(LOG.slice(at, at + size), at);
      const reached = clock.reached();
      expect(Object.keys(reached), `chunks of ${size}`).toEqual(BOOT_MILESTONES.map((m) => m.name));
      // "Memory: …K/…K available" is complete only with the chunk holding the " available"'s last "e".
      const memoryEnd = LOG.indexOf("K available") + "K available".length - 1;
      expect(reached.memory, `chunks of ${size}`).toBe(memoryEnd - (memoryEnd % size));
      expect(clock.text()).toBe(LOG);
    }
  });

  it("tells 'Command line' from the later 'Kernel command line' and stops where the log stops", () => {
    const clock = new MilestoneClock(0);
    clock.feed("[    0.0] Linux version 6.1\r\n[   27.8] Kernel command line: quiet\r\n[   31.9] Memory: 212956K/2617", 10);
    expect(clock.reached()).toEqual({ banner: 10, "kernel command line": 10 });
    expect(clock.furthest()).toBe("kernel command line");
    clock.feed("52K available\r\n", 20);
    expect(clock.reached().memory).toBe(20);
    expect(clock.furthest()).toBe("memory");
    expect(new MilestoneClock().furthest()).toBeUndefined();
  });
});

const missing = qemuBootMissing();
if (missing) console.warn(`bench-boot qemu: SKIPPED, ${missing}`);

describe.skipIf(missing !== undefined)("bootQemu", () => {
  const dir = tempDir("bench-boot");
  afterAll(() => cleanup(dir));

  it("ends 'exited' with qemu's reason when the kernel is not one", async () => {
    const kernel = path.join(dir, "not-a-kernel");
    writeFileSync(kernel, "this is not an ELF vmlinux\n");
    const run = await bootQemu({ kernel, cmdline: "console=ttyS0", memoryBytes: 64 << 20, vcpus: 1, timeoutMs: 30_000 });
    expect(run.end).toBe("exited");
    expect(run.endDetail).toMatch(/qemu-system-x86_64 exited \(code 1\): .*invalid kernel header/);
    expect(run.milestones).toEqual({});
    expect(run.furthest).toBeUndefined();
  });
});

describe("qumra bench boot flags", () => {
  it("refuses bad flags with one line naming the flag, before starting anything", async () => {
    const cases: [string[], RegExp][] = [
      [["--kernel", "/nonexistent/vmlinux"], /^qumra: --kernel \/nonexistent\/vmlinux does not exist$/],
      [["--memory", "10M"], /^qumra: --memory 10M: a whole number of MiB, at least 64M/],
      [["--memory", "lots"], /^qumra: --memory lots: expected a size/],
      [["--vcpus", "0"], /^qumra: --vcpus 0: expected a whole number from 1 to 64/],
      [["--timeout", "0"], /^qumra: --timeout 0: expected a positive number/],
      [["--timeout", "1.5"], /^qumra: --timeout 1.5: expected a whole number from 1 to 3600/],
    ];
    for (const [flags, message] of cases) {
      // A kernel and initrd that exist, so each case fails on its own flag (the fixture may not be there).
      const r = await runCli(["bench", "boot", "--kernel", process.execPath, "--initrd", process.execPath, ...flags]);
      expect(r.code, flags.join(" ")).not.toBe(0);
      expect(r.stderr.trim().split("\n")[0], flags.join(" ")).toMatch(message);
    }
  });
});
