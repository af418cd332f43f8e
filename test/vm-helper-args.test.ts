// Where the domain meets the helper's own forms (agent/src/vm/helper-convert.ts): a VmSpec as the
// helper's command line, the helper's state as a VmState.
import { describe, expect, it } from "vitest";
import { helperArgsOf, vmStateOf } from "../agent/src/vm/helper-convert.js";
import { helperArgv } from "../agent/src/vm/helper-process.js";
import { HELPER_STATES } from "../agent/src/vm/helper-protocol.js";
import type { VmSpec } from "../agent/src/vm/types.js";

const paths = { controlPath: "/run/a/control.sock", secretFile: "/state/a/control.secret", runtimeDir: "/run/a" };
const base = { name: "a", vcpus: 2, memoryBytes: 64 << 20, display: { width: 640, height: 480 }, labels: {} };

describe("helper arguments and states", () => {
  it("runs the demo guest with the spec's vCPUs, memory and framebuffer", () => {
    const spec: VmSpec = { ...base, boot: { kind: "demo" } };
    expect(helperArgv(helperArgsOf(spec, "/state/a/image.bin"), paths)).toEqual([
      "--control", "/run/a/control.sock", "--secret-file", "/state/a/control.secret", "--runtime-dir", "/run/a", "--vcpus", "2", "--memory", String(64 << 20),
      "--fb-width", "640", "--fb-height", "480", "--demo",
    ]);
  });

  it("boots a flat image from the stored file at its load address, entry and mode", () => {
    const spec: VmSpec = { ...base, boot: { kind: "flat", imageSha256: "00", imageBytes: 13, loadAddress: 0x200000, entryAddress: 0x200010, mode: "protected" } };
    const argv = helperArgv(helperArgsOf(spec, "/state/a/image.bin"), { ...paths, device: "/dev/kvm" });
    expect(argv.slice(10)).toEqual(["--device", "/dev/kvm", "--fb-width", "640", "--fb-height", "480", "--image", "/state/a/image.bin", "--load", "0x200000", "--entry", "0x200010", "--mode", "protected"]);
  });

  it("passes the sandbox: the ids to drop to, or --no-sandbox", () => {
    const args = helperArgsOf({ ...base, boot: { kind: "demo" } }, "/state/a/image.bin");
    expect(helperArgv(args, paths, { enabled: true, uid: 999, gid: 995 }).slice(10, 14)).toEqual(["--uid", "999", "--gid", "995"]);
    expect(helperArgv(args, paths, { enabled: false, uid: 999, gid: 995 })).toContain("--no-sandbox");
    const asAgent = helperArgv(args, paths, { enabled: true });
    expect(asAgent).not.toContain("--uid");
    expect(asAgent).not.toContain("--no-sandbox");
  });

  it("refuses arguments with neither an image nor the demo", () => {
    expect(() => helperArgv({ vcpus: 1, memoryBytes: 1 << 20 }, paths)).toThrow(/image or demo/);
  });

  it("names every helper state as the domain does", () => {
    expect(HELPER_STATES.map(vmStateOf)).toEqual(["CREATED", "RUNNING", "PAUSED", "STOPPED", "CRASHED"]);
  });
});
