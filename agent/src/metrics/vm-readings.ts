// One scrape's reading of every VM: its record, and its helper's STATS through the same path GetVmStats
// takes (VmManager.stats), each VM within a bounded wait so one helper that does not answer (stopped,
// hung, overloaded) costs the scrape at most that wait and shows as not read, never stalls it.
import { QumraError } from "../errors.js";
import { withCallDeadline } from "../vm/call-deadline.js";
import type { VmManager } from "../vm/manager.js";
import type { VmRecord, VmStatsSnapshot } from "../vm/types.js";

/** How long one VM's reading may take; all VMs are read at once, so this bounds the whole scrape too. */
export const VM_READ_BUDGET_MS = 1000;

export type VmReadSource = Pick<VmManager, "list" | "stats" | "hang">;

export interface VmReading {
  record: VmRecord;
  /** Undefined when the helper did not answer in time or failed (see `error`). */
  stats?: VmStatsSnapshot;
  /** Why stats is missing. */
  error?: string;
  /** The helper is stopped or has requests unanswered (HelperLink.hang). */
  hung: boolean;
}

export async function readVms(vms: VmReadSource, budgetMs = VM_READ_BUDGET_MS): Promise<VmReading[]> {
  const records = vms.list(undefined, {});
  const readings = await Promise.all(records.map((record) => readOne(vms, record, budgetMs)));
  return readings.filter((r): r is VmReading => r !== undefined);
}

/** A VM deleted while it was being read is left out (its series must not outlive it). */
async function readOne(vms: VmReadSource, record: VmRecord, budgetMs: number): Promise<VmReading | undefined> {
  const hung = vms.hang(record.vmId) !== undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    // The deadline bounds the helper request itself (it gives up, and is forgotten, before the budget);
    // the race bounds what the deadline cannot, e.g. waiting for a lost connection to be made again.
    const reading = withCallDeadline(Date.now() + budgetMs, () => vms.stats(record.vmId));
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${budgetMs} ms`)), budgetMs);
    });
    const { record: now, stats } = await Promise.race([reading, late]);
    return { record: now, stats, hung };
  } catch (err) {
    if (err instanceof QumraError && err.kind === "not-found") return undefined;
    return { record, error: (err as Error).message, hung };
  } finally {
    clearTimeout(timer);
  }
}
