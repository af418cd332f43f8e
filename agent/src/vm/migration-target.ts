// The destination side of a live migration: one incoming VM takes pages, then the state, then the
// commit, in that order. VmManager.receiveMigration() creates the VM (intent migrate-in) and lends it
// here; anything out of order, or the stream ending before the commit, discards it.
import { QumraError, invalidArgument } from "../errors.js";
import type { HelperClient } from "./helper-client.js";
import { PAGES_MAX, PAGE_SIZE, STATE_MAX, runsBytes, type PageRun } from "./helper-protocol.js";
import { batchRuns, rangeRuns } from "./page-runs.js";

/** What an incoming migration may do with the VM made for it. */
export interface TargetVm {
  vmId: string;
  ask<T>(exchange: (client: HelperClient) => Promise<T>): Promise<T>;
  /** The state is in: the console gets the source's scrollback and the VM is PAUSED. */
  loaded(scrollback: Buffer): void;
  /** The VM is ours now (durably), RUNNING again if it ran at the source. */
  commit(resume: boolean): Promise<void>;
  /** Removes the incoming VM (its helper, record and folders). */
  discard(reason: string): Promise<void>;
}

export class IncomingMigration {
  private phase: "pages" | "state" | "loaded" | "committed" | "discarded" = "pages";
  private state?: Buffer;
  private received = 0;

  constructor(
    private readonly vm: TargetVm,
    private readonly resume: boolean,
  ) {}

  /**
   * The new helper's loader wrote its boot image and tables; the source's pages replace RAM, and pages the
   * source never sends must read as zeros, so what the loader wrote is zeroed first.
   */
  async prepare(): Promise<void> {
    const written = rangeRuns(await this.vm.ask((c) => c.ramMap()));
    for (const batch of batchRuns(written)) await this.vm.ask((c) => c.writePages(batch, Buffer.alloc(runsBytes(batch))));
  }

  async pages(runs: readonly PageRun[], data: Uint8Array): Promise<void> {
    this.expect("pages", "pages");
    const pages = runsBytes(runs) / PAGE_SIZE;
    if (pages > PAGES_MAX) throw invalidArgument(`a pages message carries ${pages} pages: at most ${PAGES_MAX}`);
    if (data.length !== pages * PAGE_SIZE) throw invalidArgument(`a pages message has ${data.length} bytes of data for ${pages} pages (${pages * PAGE_SIZE} bytes)`);
    for (const r of runs) {
      if (r.gpa % PAGE_SIZE !== 0 || !Number.isSafeInteger(r.gpa)) throw invalidArgument(`page run at 0x${r.gpa.toString(16)} is not page-aligned`);
    }
    if (pages) await this.vm.ask((c) => c.writePages(runs, data));
  }

  /** One chunk of the state; with the last one the state is loaded and the RAM checksum is returned. */
  async stateChunk(total: number, offset: number, data: Uint8Array, scrollback: Uint8Array): Promise<number | undefined> {
    if (this.phase === "pages") {
      if (!Number.isSafeInteger(total) || total <= 0 || total > STATE_MAX) throw invalidArgument(`state of ${total} bytes: expected 1 to ${STATE_MAX}`);
      this.state = Buffer.alloc(total);
      this.phase = "state";
    }
    this.expect("state", "state");
    const state = this.state!;
    if (total !== state.length) throw invalidArgument(`state chunk says total ${total}, the first said ${state.length}`);
    if (offset !== this.received) throw invalidArgument(`state chunk at offset ${offset}: expected ${this.received}`);
    if (offset + data.length > total) throw invalidArgument(`state chunk [${offset}, +${data.length}) passes its total ${total}`);
    state.set(data, offset);
    this.received += data.length;
    if (this.received < total) return undefined;
    await this.vm.ask((c) => c.loadState(state));
    this.state = undefined;
    this.vm.loaded(Buffer.from(scrollback));
    this.phase = "loaded";
    return (await this.vm.ask((c) => c.ramChecksum())).crc32;
  }

  async commit(): Promise<void> {
    this.expect("loaded", "commit");
    this.phase = "committed";
    await this.vm.commit(this.resume);
  }

  /** The stream ended or failed: an uncommitted VM goes. */
  async end(reason: string): Promise<void> {
    if (this.phase === "committed" || this.phase === "discarded") return;
    this.phase = "discarded";
    await this.vm.discard(reason);
  }

  private expect(phase: IncomingMigration["phase"], what: string): void {
    if (this.phase !== phase) {
      throw new QumraError("failed-precondition", `incoming migration of VM '${this.vm.vmId}': a ${what} message while ${this.phase === "state" ? "the state is half sent" : `in phase ${this.phase}`}`);
    }
  }
}
