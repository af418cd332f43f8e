// The VM lifecycle: CREATED → RUNNING ⇄ PAUSED → STOPPED; any → CRASHED; RUNNING/PAUSED → MIGRATED (moved to
// another agent); DELETED once removed.
import { failedPrecondition } from "../errors.js";
import type { VmState } from "./types.js";

const TRANSITIONS: Record<VmState, readonly VmState[]> = {
  // CREATED → PAUSED: a VM restored from a snapshot is paused at the saved point.
  CREATED: ["RUNNING", "PAUSED", "STOPPED", "CRASHED", "DELETED"],
  RUNNING: ["PAUSED", "STOPPED", "CRASHED", "MIGRATED"],
  PAUSED: ["RUNNING", "STOPPED", "CRASHED", "MIGRATED"],
  STOPPED: ["DELETED"],
  CRASHED: ["DELETED", "STOPPED"],
  DELETED: [],
  MIGRATED: ["DELETED"],
};

export function canTransition(from: VmState, to: VmState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Throws FAILED_PRECONDITION naming the VM's current state when `action` needs one of `allowed`. */
export function requireState(vmId: string, current: VmState, allowed: readonly VmState[], action: string): void {
  if (!allowed.includes(current)) {
    throw failedPrecondition(`cannot ${action} VM '${vmId}': it is ${current} (needs ${allowed.join(" or ")})`);
  }
}
