// A stock Linux kernel (Debian's cloud vmlinux, `npm run fixtures`) booted through its PVH entry by
// the agent: the serial console shows the banner, the command line as given, the e820 map the helper
// built and the memory total that map makes. Under kvm-pvm (guest code emulated) the kernel stops
// once it needs int3 in 64-bit mode, after "Memory:", so that is the last milestone checked. Plus the
// refusals of kernel/initrd paths outside the agent's --images-dir.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, type VmSpec } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, discardAgent, tempDir, type RunningAgent } from "./helpers/agent.js";
import { call, callError } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { attachConsole } from "./helpers/vm.js";
import os from "node:os";

/** Where scripts/fixtures.mjs caches them. */
const FIXTURES = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "qumra", "fixtures");
const VMLINUX = path.join(FIXTURES, "vmlinux");
const INITRD = path.join(FIXTURES, "qumra-init.cpio");
const haveFixtures = existsSync(VMLINUX) && existsSync(INITRD);
if (!hasKvm) console.warn("linux-boot: SKIPPED, no /dev/kvm");
else if (!haveFixtures) console.warn(`linux-boot: SKIPPED, no fixtures in ${FIXTURES}: run npm run fixtures`);

const MIB = 1 << 20;
const MEMORY = 256 * MIB;
const CMDLINE = "console=ttyS0 earlyprintk=ttyS0 noxsave";
/** Milestones under emulated KVM take tens of seconds, up to four times longer under load. */
const WAIT_MS = 180_000;

/** The map native/pvh.c builds for a VM of at most 3 GiB, as the kernel prints it. */
function expectedE820(memory: number): string[] {
  const hex = (n: number) => `0x${n.toString(16).padStart(16, "0")}`;
  const line = (start: number, end: number, type: string) => `BIOS-e820: [mem ${hex(start)}-${hex(end - 1)}] ${type}`;
  return [
    line(0, 0x9fc00, "usable"),
    line(0x9fc00, 0x100000, "reserved"),
    line(0x100000, memory, "usable"),
    line(0xfffbc000, 0xfffc0000, "reserved"),
  ];
}

/** KiB of usable pages the kernel counts ("Memory: …K/TOTALK"): whole pages of the usable ranges, less page 0. */
function expectedTotalKiB(memory: number): number {
  const pages = Math.floor(0x9fc00 / 4096) - 1 + (memory - 0x100000) / 4096;
  return pages * 4;
}

function linuxSpec(boot: { kernel: string; initrd?: string; cmdline?: string }): VmSpec {
  return {
    name: "linux",
    vcpus: 1,
    memoryBytes: BigInt(MEMORY),
    boot: { $case: "linux", value: { kernel: boot.kernel, initrd: boot.initrd ?? "", cmdline: boot.cmdline ?? CMDLINE } },
    labels: {},
    imageCompression: 0,
    cpuWeight: 0,
  };
}

describe.skipIf(!hasKvm || !haveFixtures)("Linux through its PVH entry", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let imagesDir: string;
  let n = 0;
  const dirs: string[] = [];

  beforeAll(async () => {
    imagesDir = tempDir("images");
    mkdirSync(path.join(imagesDir, "linux"));
    // Copies, not symlinks: a symlink out of the images dir is refused (tested below).
    copyFileSync(VMLINUX, path.join(imagesDir, "linux", "vmlinux"));
    copyFileSync(INITRD, path.join(imagesDir, "linux", "initrd.cpio"));
    const outside = tempDir("outside");
    dirs.push(imagesDir, outside);
    writeFileSync(path.join(outside, "secret"), "not for guests");
    symlinkSync(path.join(outside, "secret"), path.join(imagesDir, "escape"));
    agent = await startAgent(["--images-dir", imagesDir]);
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    vms?.close();
    if (agent) await discardAgent(agent);
    cleanup(...dirs);
  });

  it(
    "boots to the kernel's memory report with the command line and e820 map it was given",
    async () => {
      const vmId = "linux-boot";
      await call(vms, vms.createVm, { vmId, requestId: `r-${vmId}`, spec: linuxSpec({ kernel: "linux/vmlinux", initrd: "linux/initrd.cpio" }) });
      const con = attachConsole(vms, vmId);
      const t0 = Date.now();
      await call(vms, vms.startVm, { vmId });
      const at = (label: string) => console.log(`linux-boot: ${label} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);

      await con.waitFor("Linux version ", WAIT_MS);
      at("Linux version");
      const afterCmdline = await con.waitFor(/Command line: [^\r\n]*\r?\n/, WAIT_MS);
      expect(/Command line: ([^\r\n]*)\r?\n/.exec(con.text())![1]).toBe(CMDLINE);
      await con.waitFor("printk: bootconsole", WAIT_MS, afterCmdline);
      const e820 = con.text().match(/BIOS-e820: \[mem [^\]]+\] \w+/g);
      expect(e820).toEqual(expectedE820(MEMORY));
      await con.waitFor("Kernel command line: ", WAIT_MS);
      at("Kernel command line");
      await con.waitFor(/Memory: \d+K\/\d+K available/, WAIT_MS);
      at("Memory");
      const total = Number(/Memory: \d+K\/(\d+)K available/.exec(con.text())![1]);
      expect(total).toBe(expectedTotalKiB(MEMORY));
      con.close();
      await call(vms, vms.deleteVm, { vmId, force: true });
    },
    4 * WAIT_MS,
  );

  it("refuses kernel and initrd paths that lead outside --images-dir with INVALID_ARGUMENT", async () => {
    const cases: [Parameters<typeof linuxSpec>[0], RegExp][] = [
      [{ kernel: VMLINUX }, /spec\.linux\.kernel .* is absolute/],
      [{ kernel: "../outside/vmlinux" }, /spec\.linux\.kernel .* contains '\.\.'/],
      [{ kernel: "linux/../../vmlinux" }, /contains '\.\.'/],
      [{ kernel: "escape" }, /spec\.linux\.kernel 'escape' leads outside .* through a symlink/],
      [{ kernel: "linux/vmlinux", initrd: "escape" }, /spec\.linux\.initrd 'escape' leads outside/],
      [{ kernel: "linux/missing" }, /spec\.linux\.kernel 'linux\/missing' does not exist in the agent's --images-dir/],
      [{ kernel: "linux" }, /is not a regular file/],
      [{ kernel: "" }, /spec\.linux\.kernel is empty/],
      [{ kernel: "linux/vmlinux", cmdline: "x".repeat(2048) }, /spec\.linux\.cmdline is 2048 bytes: at most 2047/],
    ];
    for (const [boot, message] of cases) {
      const vmId = `refused-${++n}`;
      const err = await callError(vms, vms.createVm, { vmId, requestId: `r-${vmId}`, spec: linuxSpec(boot) });
      expect(err.code, JSON.stringify(boot)).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toMatch(message);
      // Nothing was left defined.
      const got = await callError(vms, vms.getVm, { vmId });
      expect(got.code).toBe(grpc.status.NOT_FOUND);
    }
  });
});
