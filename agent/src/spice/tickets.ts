// Display tickets: the passwords SPICE clients present at link time. The agent serves one SPICE port, so
// the ticket picks the VM: a live ticket belongs to exactly one VM. The QMP/VDSM model: a controller sets
// a ticket with a lifetime, and says whether clients that linked with it are dropped when it expires.
import { createHash, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import { QumraError, invalidArgument } from "../errors.js";

export type TicketExpiry = "keep" | "disconnect";

export const MIN_TICKET_CHARS = 8;
/** SPICE encrypts the ticket plus a NUL with RSA-1024 OAEP-SHA1: at most 86 bytes; spice-gtk caps it at 60. */
export const MAX_TICKET_CHARS = 60;
export const MAX_TICKET_TTL_S = 31_536_000;
const PRINTABLE = /^[\x20-\x7e]*$/;

interface Ticket {
  /** Kept for GetDisplayConnection's .vv file, which hands it to the user. */
  value: string;
  digest: Buffer;
  expiresAt: number;
  onExpiry: TicketExpiry;
  /** Grows with every ticket set on this VM: a client remembers the generation it linked with. */
  generation: number;
  timer?: NodeJS.Timeout;
}

export type TicketCheck =
  | { ok: true; vmId: string; generation: number }
  | { ok: false; vmId?: string; reason: string };

export interface TicketBookEvents {
  /** A ticket with on_expiry=disconnect expired: drop the clients of `vmId` that linked with `generation`. */
  expired: [vmId: string, generation: number, onExpiry: TicketExpiry];
}

export class TicketBook extends EventEmitter<TicketBookEvents> {
  private readonly tickets = new Map<string, Ticket>();
  private generations = 0;

  constructor(private readonly now: () => number = Date.now) {
    super();
  }

  /** Sets (replaces) the VM's ticket; ALREADY_EXISTS when another VM holds the same live ticket. */
  set(vmId: string, ticket: string, ttlSeconds: number, onExpiry: TicketExpiry): { expiresAt: Date } {
    validateTicket(ticket);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TICKET_TTL_S) {
      throw invalidArgument(`expires_in_s ${ttlSeconds} is outside 1..${MAX_TICKET_TTL_S} (0 means 3600)`);
    }
    const digest = digestOf(ticket);
    const now = this.now();
    for (const [other, t] of this.tickets) {
      if (other !== vmId && t.expiresAt > now && timingSafeEqual(t.digest, digest)) {
        throw new QumraError("already-exists", "another VM on this agent holds that ticket now: tickets pick the VM on the shared SPICE port, so each must be unique (choose another, or use a random one)");
      }
    }
    this.clear(vmId);
    const entry: Ticket = { value: ticket, digest, expiresAt: now + ttlSeconds * 1000, onExpiry, generation: ++this.generations };
    entry.timer = setTimeout(() => this.emit("expired", vmId, entry.generation, onExpiry), ttlSeconds * 1000);
    entry.timer.unref();
    this.tickets.set(vmId, entry);
    return { expiresAt: new Date(entry.expiresAt) };
  }

  /** Clears the VM's ticket: no new client links; connected clients stay. */
  clear(vmId: string): void {
    const t = this.tickets.get(vmId);
    if (t) clearTimeout(t.timer);
    this.tickets.delete(vmId);
  }

  /** The VM's ticket, if one is set (expired or not). */
  status(vmId: string): { set: boolean; value?: string; expiresAt?: Date; live: boolean } {
    const t = this.tickets.get(vmId);
    if (!t) return { set: false, live: false };
    return { set: true, value: t.value, expiresAt: new Date(t.expiresAt), live: t.expiresAt > this.now() };
  }

  /** Whether the generation a client linked with is still the VM's current, unexpired ticket. */
  current(vmId: string, generation: number): boolean {
    const t = this.tickets.get(vmId);
    return t !== undefined && t.generation === generation && t.expiresAt > this.now();
  }

  /**
   * Finds the VM whose ticket this is (only `vmId`'s when given). Every candidate is compared in constant
   * time on a fixed-length digest, so the time taken says nothing about how much of a ticket was right.
   */
  check(presented: Uint8Array, vmId?: string): TicketCheck {
    const digest = digestOf(presented);
    const now = this.now();
    // An expired ticket may equal another VM's live one (uniqueness holds among live tickets): live wins.
    let found: { vmId: string; t: Ticket } | undefined;
    for (const [id, t] of this.tickets) {
      if (vmId !== undefined && id !== vmId) continue;
      if (timingSafeEqual(t.digest, digest) && (!found || t.expiresAt > now)) found = { vmId: id, t };
    }
    if (!found) {
      if (vmId !== undefined && !this.tickets.has(vmId)) return { ok: false, vmId, reason: "no ticket is set for this VM" };
      return { ok: false, vmId, reason: "wrong ticket" };
    }
    if (found.t.expiresAt <= now) return { ok: false, vmId: found.vmId, reason: "ticket expired" };
    return { ok: true, vmId: found.vmId, generation: found.t.generation };
  }

  /** Forgets everything (agent shutdown). */
  close(): void {
    for (const id of [...this.tickets.keys()]) this.clear(id);
  }
}

/** 8 to 60 printable ASCII characters. */
export function validateTicket(ticket: string): void {
  if (ticket.length < MIN_TICKET_CHARS || ticket.length > MAX_TICKET_CHARS) {
    throw invalidArgument(`ticket is ${ticket.length} characters long: use ${MIN_TICKET_CHARS} to ${MAX_TICKET_CHARS} (empty clears it)`);
  }
  if (!PRINTABLE.test(ticket)) throw invalidArgument("ticket has characters outside printable ASCII (0x20-0x7e): SPICE clients send it as bytes");
}

function digestOf(text: string | Uint8Array): Buffer {
  return createHash("sha256").update(text).digest();
}
