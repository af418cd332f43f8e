// One agent per state dir: STATE/agent.lock is a symlink whose target is "PID:STARTTIME" of its holder
// (symlink creation is atomic and fails if it exists, and the target needs no data block, so a full disk
// still takes it — the shape of Emacs's lock files). A lock whose holder is gone (kill -9) is taken over;
// the start time (field 22 of /proc/PID/stat) tells a reused pid from the holder.
import { readFileSync, readlinkSync, renameSync, symlinkSync, unlinkSync } from "node:fs";
import path from "node:path";
import { errnoOf } from "./vm/storage-error.js";

export class StateLockHeld extends Error {
  constructor(
    readonly lockPath: string,
    readonly holderPid: number,
  ) {
    super(`the state dir is in use by another qumra-agent (pid ${holderPid}, lock ${lockPath}); stop it first, or give this agent another --state-dir`);
    this.name = "StateLockHeld";
  }
}

export interface StateLock {
  /** Why the lock could not be written (read-only state dir); empty when it is held. */
  readonly unheld: string;
  release(): void;
}

/** The start time of a process in clock ticks since boot, or undefined when it does not exist. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may hold spaces: field 3 onwards.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function holderOf(target: string): { pid: number; start: string } | undefined {
  const m = /^(\d+):(\d+)$/.exec(target);
  return m ? { pid: Number(m[1]), start: m[2]! } : undefined;
}

function alive(target: string): number | undefined {
  const h = holderOf(target);
  return h && startTimeOf(h.pid) === h.start ? h.pid : undefined;
}

/** Takes STATE/agent.lock or throws StateLockHeld naming the live holder. Touches nothing else. */
export function lockStateDir(stateDir: string): StateLock {
  const lock = path.join(stateDir, "agent.lock");
  const mine = `${process.pid}:${startTimeOf(process.pid)}`;
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      symlinkSync(mine, lock);
      return { unheld: "", release: () => releaseIfMine(lock, mine) };
    } catch (err) {
      if (errnoOf(err) !== "EEXIST") {
        // A read-only state dir: no lock can be written. Refuse if someone holds one; else run unlocked.
        const target = readTarget(lock);
        const pid = target !== undefined ? alive(target) : undefined;
        if (pid !== undefined && pid !== process.pid) throw new StateLockHeld(lock, pid);
        return { unheld: `the lock ${lock} could not be taken (${errnoOf(err) ?? String(err)})`, release: () => undefined };
      }
    }
    const target = readTarget(lock);
    if (target === undefined) continue; // released meanwhile: try again
    const pid = alive(target);
    if (pid !== undefined) throw new StateLockHeld(lock, pid);
    // Stale. Move it aside: of several agents doing this at once only one renames this link.
    const aside = `${lock}.stale-${process.pid}`;
    try {
      renameSync(lock, aside);
    } catch (err) {
      if (errnoOf(err) === "ENOENT") continue; // another agent moved it first
      // A read-only state dir: the dead holder's lock cannot be replaced; run unlocked (degraded anyway).
      return { unheld: `the stale lock ${lock} of a dead agent could not be replaced (${errnoOf(err) ?? String(err)})`, release: () => undefined };
    }
    const moved = readTarget(aside);
    if (moved !== target && moved !== undefined) {
      // Another agent took over between our look and our move: give its lock back.
      try {
        symlinkSync(moved, lock);
      } catch {
        /* a third took it; that one holds */
      }
    }
    try {
      unlinkSync(aside);
    } catch {
      /* gone */
    }
  }
  throw new Error(`could not take the lock ${lock}: it kept changing (several agents starting at once?)`);
}

function readTarget(lock: string): string | undefined {
  try {
    return readlinkSync(lock);
  } catch {
    return undefined;
  }
}

function releaseIfMine(lock: string, mine: string): void {
  if (readTarget(lock) !== mine) return;
  try {
    unlinkSync(lock);
  } catch {
    /* read-only now: the next agent sees a dead holder and takes over */
  }
}
