// What both sides of a live migration exchange, as the VM domain sees it: the source drives a
// MigrationChannel (api/migration-peer.ts implements it over the destination's ReceiveMigration RPC),
// the destination answers through an IncomingMigration (migration-target.ts). No gRPC types here.
import type { PageRun } from "./helper-protocol.js";
import type { VmSpec } from "./types.js";

/** Where the destination serves the VM's display over SPICE (for the client's migrate-switch). */
export interface DisplayHint {
  host: string;
  port: number;
  tlsPort: number;
}

export interface MigrationOffer {
  vmId: string;
  spec: VmSpec;
  /** A flat-image VM's image (the destination keeps it as its own image.bin). */
  image?: Uint8Array;
  /** Whether the VM runs at the source: the destination resumes it after the commit. */
  running: boolean;
  migrationId: string;
  /** The source agent, for the destination's events and logs. */
  source: string;
}

export interface MigrationChannel {
  /** Sends the offer; resolves once the destination's incoming VM exists. */
  offer(offer: MigrationOffer): Promise<{ display?: DisplayHint }>;
  /** Sends one batch of pages; resolves when the transport can take more (its backpressure). */
  sendPages(runs: readonly PageRun[], data: Buffer): Promise<void>;
  /** Sends the state blob and the console scrollback; resolves with the destination's RAM checksum once loaded. */
  sendState(blob: Buffer, scrollback: Buffer): Promise<{ ramCrc32: number }>;
  /** The switch: the destination takes the VM over (and resumes it if it ran); resolves when it has. */
  commit(): Promise<void>;
  /** After a commit whose answer was lost: does the destination have the VM now? */
  probe(): Promise<"present" | "absent" | "unknown">;
  /** Ends the migration before the switch: the destination removes its incoming VM. */
  abort(reason: string): void;
}

export type MigrationPhase = "preparing" | "precopy" | "stop-and-copy" | "completed";

export interface MigrationProgress {
  phase: MigrationPhase;
  round: number;
  bytesSent: number;
  memoryBytes: number;
  /** Bytes the guest dirtied during the last round, and at what rate. */
  dirtyBytes: number;
  dirtyBytesPerSecond: number;
  transferBytesPerSecond: number;
  expectedDowntimeMs: number;
  /** Set in the completed message, with where the pause went (ms per step). */
  downtimeMs: number;
  downtimePartsMs?: Record<string, number>;
  totalMs: number;
  ramCrc32: number;
  display?: DisplayHint;
}

export type OnMigrationProgress = (p: MigrationProgress) => void;

export interface MigrationOptions {
  /** The longest pause accepted: pre-copy stops once what is dirty could be sent in this time. */
  maxDowntimeMs: number;
  /** Bytes per second at most (0: no cap). */
  maxBandwidth: number;
  maxRounds: number;
  /** Cancels the migration while it has not switched. */
  signal: AbortSignal;
}
