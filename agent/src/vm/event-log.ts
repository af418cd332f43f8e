// Numbered VM events: kept in a bounded ring so a watcher can resume from a sequence number,
// and fanned out to live subscribers. The last number is persisted so numbers keep growing across restarts.
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { writeAtomic } from "./store.js";
import type { VmRecord, VmState } from "./types.js";

export type VmEventType =
  | "CREATED"
  | "STATE_CHANGED"
  | "GUEST_RESET"
  | "DELETED"
  | "NOTICE"
  | "DISPLAY_CLIENT_CONNECTED"
  | "DISPLAY_CLIENT_REFUSED"
  | "DISPLAY_CLIENT_DISCONNECTED"
  | "MIGRATED";

export interface VmEvent {
  sequence: number;
  time: Date;
  type: VmEventType;
  vmId: string;
  previousState?: VmState;
  state: VmState;
  reason: string;
  vm?: VmRecord;
}

export type Subscriber = (event: VmEvent) => void;

export class EventLog {
  private readonly ring: VmEvent[] = [];
  private readonly subscribers = new Set<Subscriber>();
  private sequence: number;
  private readonly file: string;
  /** Events numbered at or below this were emitted by an earlier agent process and are not kept. */
  readonly firstKept: number;
  /** Made new by every agent process: sequence numbers are comparable only under the same id. */
  readonly instanceId: string = randomUUID();

  constructor(stateDir: string, private readonly capacity = 10_000) {
    this.file = path.join(stateDir, "events.json");
    this.sequence = readLastSequence(this.file);
    this.firstKept = this.sequence + 1;
  }

  get lastSequence(): number {
    return this.sequence;
  }

  append(event: Omit<VmEvent, "sequence" | "time">): VmEvent {
    const full: VmEvent = { ...event, sequence: ++this.sequence, time: new Date() };
    this.ring.push(full);
    if (this.ring.length > this.capacity) this.ring.shift();
    try {
      writeAtomic(this.file, JSON.stringify({ lastSequence: this.sequence }));
    } catch {
      // A full or read-only state dir: the event still happened; numbers may repeat after a restart,
      // which a resuming watcher sees as a gap (since() answers undefined below firstKept).
    }
    for (const subscriber of this.subscribers) subscriber(full);
    return full;
  }

  /**
   * Events after `sequence`, or undefined when they cannot be told: some are no longer kept, or the
   * number is beyond the last one (it came from another agent instance, or the state dir was reset).
   */
  since(sequence: number): VmEvent[] | undefined {
    if (sequence > this.sequence) return undefined;
    if (sequence === this.sequence) return [];
    const oldest = this.ring[0]?.sequence ?? this.sequence + 1;
    if (sequence + 1 < oldest || sequence + 1 < this.firstKept) return undefined;
    return this.ring.filter((e) => e.sequence > sequence);
  }

  subscribe(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }
}

/** The last number an earlier agent used; a missing or damaged file counts as none. */
function readLastSequence(file: string): number {
  if (!existsSync(file)) return 0;
  try {
    const n = (JSON.parse(readFileSync(file, "utf8")) as { lastSequence?: unknown } | null)?.lastSequence;
    return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : 0;
  } catch {
    return 0;
  }
}
