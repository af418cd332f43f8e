// The one place where the VM domain meets the helper's own forms: a VmSpec becomes the helper's
// command-line arguments, the helper's lower-case state becomes a VmState.
import type { HelperState } from "./helper-protocol.js";
import type { HelperArgs } from "./helper-process.js";
import type { VmSpec, VmState } from "./types.js";
import { resolveInImagesDir } from "./images-dir.js";
import { kernelFormat } from "./kernel-format.js";

/** The helper's arguments for a VM; a flat image is read from imagePath, a Linux kernel and initrd from imagesDir. */
export function helperArgsOf(spec: VmSpec, imagePath: string, imagesDir = ""): HelperArgs {
  const common = { vcpus: spec.vcpus, memoryBytes: spec.memoryBytes, fbWidth: spec.display.width, fbHeight: spec.display.height };
  const boot = spec.boot;
  if (boot.kind === "demo") return { ...common, demo: true };
  if (boot.kind === "linux") {
    const kernel = resolveInImagesDir(imagesDir, boot.kernel, "spec.linux.kernel");
    kernelFormat(kernel, "spec.linux.kernel", boot.kernel);
    const initrd = boot.initrd ? resolveInImagesDir(imagesDir, boot.initrd, "spec.linux.initrd") : undefined;
    return { ...common, linux: { kernel, ...(initrd ? { initrd } : {}), cmdline: boot.cmdline } };
  }
  return { ...common, image: imagePath, loadAddr: boot.loadAddress, entry: boot.entryAddress, mode: boot.mode };
}

const STATES: Record<HelperState, VmState> = {
  created: "CREATED",
  running: "RUNNING",
  paused: "PAUSED",
  stopped: "STOPPED",
  crashed: "CRASHED",
};

export const vmStateOf = (state: HelperState): VmState => STATES[state];
