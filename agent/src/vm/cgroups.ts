// Per-VM cgroups (v2): each helper runs in a cgroup of its own under the agent's subtree, with
// memory.max, pids.max and cpu.weight from its spec, so one VM cannot starve the host or its
// neighbours. The subtree is a sibling of the agent's own cgroup (by default PARENT/qumra.slice at
// the cgroup2 root), because a cgroup with processes cannot also hand controllers to children.
// Where there is no writable cgroup2 tree the agent runs without, and says why (GetHost).
import { mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync, existsSync } from "node:fs";
import path from "node:path";
import type { Logger } from "../logger.js";
import { QumraError } from "../errors.js";
import { vmFootprint } from "./admission.js";
import type { VmSpec } from "./types.js";

/** The controllers the agent sets limits with. */
export const WANTED_CONTROLLERS = ["memory", "pids", "cpu"] as const;
/** Tasks a helper needs beyond its vCPU threads (main loop, timers, a few spares). */
export const HELPER_EXTRA_TASKS = 16;
export const DEFAULT_CPU_WEIGHT = 100;

export interface CgroupStatus {
  /** True when helpers are placed in per-VM cgroups. */
  enabled: boolean;
  /** The subtree's directory (empty when disabled). */
  path: string;
  /** The controllers whose limits are applied (a subset of memory, pids, cpu). */
  controllers: string[];
  /** Why cgroups are off, or which limits cannot be applied; empty when all is in force. */
  reason: string;
}

/** The limits one VM's cgroup gets. */
export interface CgroupLimits {
  memoryMax: number;
  pidsMax: number;
  cpuWeight: number;
}

export function cgroupLimitsOf(spec: VmSpec): CgroupLimits {
  return { memoryMax: vmFootprint(spec), pidsMax: spec.vcpus + HELPER_EXTRA_TASKS, cpuWeight: spec.cpuWeight ?? DEFAULT_CPU_WEIGHT };
}

/** Where cgroup2 is mounted: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one. */
export function findCgroup2Mount(mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): string | undefined {
  const mounts: string[] = [];
  for (const line of mountinfo.split("\n")) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPEROPTS"
    const [left, right] = line.split(" - ");
    if (!right?.startsWith("cgroup2 ")) continue;
    const fields = left.split(" ");
    if (fields[3] === "/") mounts.push(fields[4].replace(/\\040/g, " "));
  }
  return mounts.find((m) => m === "/sys/fs/cgroup") ?? mounts[0];
}

export class VmCgroups {
  private constructor(
    readonly status: CgroupStatus,
    private readonly log: Logger,
  ) {}

  /** Off by choice (--cgroups off). */
  static disabled(reason: string, log: Logger): VmCgroups {
    return new VmCgroups({ enabled: false, path: "", controllers: [], reason }, log);
  }

  /**
   * Sets the subtree up: `parent` is a path relative to the cgroup2 mount (e.g. "qumra.slice") or an
   * absolute directory inside it. Never throws: a tree that cannot be used gives a disabled status.
   */
  static open(parent: string, log: Logger, mount = findCgroup2Mount()): VmCgroups {
    if (!mount) return VmCgroups.disabled("no cgroup2 file system is mounted (see /proc/self/mountinfo)", log);
    const dir = path.isAbsolute(parent) ? parent : path.join(mount, parent);
    if (dir !== mount && !dir.startsWith(mount + path.sep)) return VmCgroups.disabled(`--cgroup-parent ${parent} is not inside the cgroup2 mount ${mount}`, log);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      return VmCgroups.disabled(`cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (the cgroup2 tree at ${mount} is not writable by the agent)`, log);
    }
    const available = readWords(path.join(mount, "cgroup.controllers"));
    const wanted = WANTED_CONTROLLERS.filter((c) => available.includes(c));
    // Each level from the mount down to the subtree hands the controllers on to its children.
    const levels = path.relative(mount, dir).split(path.sep).filter(Boolean);
    let level = mount;
    for (const name of ["", ...levels]) {
      level = name ? path.join(level, name) : level;
      const on = readWords(path.join(level, "cgroup.subtree_control"));
      const missing = wanted.filter((c) => !on.includes(c));
      if (missing.length === 0) continue;
      try {
        writeFileSync(path.join(level, "cgroup.subtree_control"), missing.map((c) => `+${c}`).join(" "));
      } catch (err) {
        log.warn({ cgroup: level, err }, "cannot enable cgroup controllers");
      }
    }
    const enabled = readWords(path.join(dir, "cgroup.subtree_control"));
    const controllers = wanted.filter((c) => enabled.includes(c));
    const absent = WANTED_CONTROLLERS.filter((c) => !controllers.includes(c));
    const reason = absent.length === 0
      ? ""
      : `the ${absent.join(", ")} controller${absent.length > 1 ? "s are" : " is"} not available in ${dir} (${mount} offers: ${available.join(" ") || "none"}${mount === "/sys/fs/cgroup" ? "" : "; on a hybrid host they belong to cgroup v1 hierarchies"}): helpers are placed in per-VM cgroups but ${absent.map(limitFileOf).join(", ")} not applied`;
    const cgroups = new VmCgroups({ enabled: true, path: dir, controllers, reason }, log);
    cgroups.sweep();
    return cgroups;
  }

  /** The cgroup directory of one VM. */
  dirOf(vmId: string): string {
    return path.join(this.status.path, `vm-${vmId}`);
  }

  /** Makes the VM's cgroup with its limits and moves the helper into it (before the VM is started). */
  place(vmId: string, spec: VmSpec, pid: number): void {
    if (!this.status.enabled) return;
    const dir = this.dirOf(vmId);
    const limits = cgroupLimitsOf(spec);
    try {
      mkdirSync(dir, { recursive: true });
      if (this.status.controllers.includes("memory")) writeFileSync(path.join(dir, "memory.max"), String(limits.memoryMax));
      if (this.status.controllers.includes("pids")) writeFileSync(path.join(dir, "pids.max"), String(limits.pidsMax));
      if (this.status.controllers.includes("cpu")) writeFileSync(path.join(dir, "cpu.weight"), String(limits.cpuWeight));
      writeFileSync(path.join(dir, "cgroup.procs"), String(pid));
    } catch (err) {
      this.remove(vmId);
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new QumraError("internal", `could not put VM '${vmId}''s helper (pid ${pid}) into its cgroup ${dir}: ${code}; run the agent with --cgroups off to go without`, { cause: err });
    }
    this.log.debug({ vm_id: vmId, cgroup: dir, pid, ...limits }, "helper placed in its cgroup");
  }

  /**
   * Removes the VM's cgroup; one that still holds a process stays. After a helper's exit, a few
   * more tries: a helper that is not the agent's child may still be exiting when its socket closes.
   */
  remove(vmId: string, tries = 1): void {
    if (!this.status.enabled) return;
    const dir = this.dirOf(vmId);
    if (removeCgroup(dir) || tries <= 1) return;
    setTimeout(() => this.remove(vmId, tries - 1), 200).unref();
  }

  /** At agent shutdown: the subtree goes too when no VM's cgroup is left in it (helpers keep theirs). */
  close(): void {
    if (!this.status.enabled) return;
    this.sweep();
    removeCgroup(this.status.path);
  }

  /** Removes the cgroups of VMs whose helpers are gone (left by an agent that died); populated ones stay. */
  sweep(): void {
    let names: string[];
    try {
      names = readdirSync(this.status.path).filter((n) => n.startsWith("vm-"));
    } catch {
      return;
    }
    for (const name of names) removeCgroup(path.join(this.status.path, name));
  }
}

/** True when the cgroup is gone. */
function removeCgroup(dir: string): boolean {
  if (!existsSync(dir)) return true;
  try {
    rmdirSync(dir);
    return true;
  } catch {
    // EBUSY: a process is still in it (a live helper); it is removed when that helper has exited.
    return false;
  }
}

function readWords(file: string): string[] {
  try {
    return readFileSync(file, "utf8").trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

function limitFileOf(controller: string): string {
  return controller === "memory" ? "memory.max" : controller === "pids" ? "pids.max" : "cpu.weight";
}
