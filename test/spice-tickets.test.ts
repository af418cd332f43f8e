// Display tickets: uniqueness across VMs, expiry, clearing, replacement, and the .vv file built from them.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { QumraError } from "../agent/src/errors.js";
import { TicketBook } from "../agent/src/spice/tickets.js";
import { caOf, connectionInfo } from "../agent/src/spice/connection-info.js";
import { makePki } from "./helpers/pki.js";
import { tempDir } from "./helpers/agent.js";

const bytes = (s: string) => Buffer.from(s);

describe("TicketBook", () => {
  it("finds the VM a ticket belongs to, and refuses wrong ones", () => {
    const book = new TicketBook();
    book.set("vm-a", "ticket-aaaa", 60, "keep");
    book.set("vm-b", "ticket-bbbb", 60, "disconnect");
    expect(book.check(bytes("ticket-aaaa"))).toMatchObject({ ok: true, vmId: "vm-a" });
    expect(book.check(bytes("ticket-bbbb"))).toMatchObject({ ok: true, vmId: "vm-b" });
    expect(book.check(bytes("ticket-aaa"))).toEqual({ ok: false, vmId: undefined, reason: "wrong ticket" });
    // Pinned to a VM (the WebSocket path): another VM's ticket is wrong there.
    expect(book.check(bytes("ticket-bbbb"), "vm-a")).toEqual({ ok: false, vmId: "vm-a", reason: "wrong ticket" });
    expect(book.check(bytes("ticket-aaaa"), "vm-c")).toEqual({ ok: false, vmId: "vm-c", reason: "no ticket is set for this VM" });
    book.close();
  });

  it("keeps live tickets unique per agent (ALREADY_EXISTS) and lets a VM replace its own", () => {
    const book = new TicketBook();
    book.set("vm-a", "same-ticket", 60, "keep");
    const err = (() => {
      try {
        book.set("vm-b", "same-ticket", 60, "keep");
      } catch (e) {
        return e as QumraError;
      }
    })();
    expect(err?.kind).toBe("already-exists");
    const first = book.check(bytes("same-ticket"));
    book.set("vm-a", "same-ticket", 120, "keep");
    const second = book.check(bytes("same-ticket"));
    expect(first.ok && second.ok && second.generation > first.generation).toBe(true);
    if (first.ok) expect(book.current("vm-a", first.generation)).toBe(false);
    book.set("vm-a", "another-ticket", 60, "keep");
    expect(book.check(bytes("same-ticket")).ok).toBe(false);
    book.close();
  });

  it("expires tickets: 'ticket expired' names the VM, and the expired event carries the generation", () => {
    let now = 1_000_000;
    const book = new TicketBook(() => now);
    book.set("vm-a", "ticket-aaaa", 10, "disconnect");
    const linked = book.check(bytes("ticket-aaaa"));
    now += 10_000;
    expect(book.check(bytes("ticket-aaaa"))).toEqual({ ok: false, vmId: "vm-a", reason: "ticket expired" });
    expect(book.status("vm-a")).toMatchObject({ set: true, live: false });
    if (linked.ok) expect(book.current("vm-a", linked.generation)).toBe(false);
    // An expired ticket no longer blocks another VM from taking the same text; the live one wins the lookup.
    book.set("vm-b", "ticket-aaaa", 10, "keep");
    expect(book.check(bytes("ticket-aaaa"))).toMatchObject({ ok: true, vmId: "vm-b" });
    book.close();
  });

  it("fires 'expired' on time", async () => {
    const book = new TicketBook();
    const fired = new Promise<unknown[]>((resolve) => book.once("expired", (...args) => resolve(args)));
    book.set("vm-a", "ticket-aaaa", 1, "disconnect");
    const [vmId, , onExpiry] = await fired;
    expect([vmId, onExpiry]).toEqual(["vm-a", "disconnect"]);
    book.close();
  });

  it("clears: no new link, and the status says so", () => {
    const book = new TicketBook();
    book.set("vm-a", "ticket-aaaa", 60, "keep");
    book.clear("vm-a");
    expect(book.check(bytes("ticket-aaaa")).ok).toBe(false);
    expect(book.status("vm-a")).toEqual({ set: false, live: false });
  });

  it("validates tickets and lifetimes with messages a person can act on", () => {
    const book = new TicketBook();
    expect(() => book.set("vm-a", "short", 60, "keep")).toThrow(/5 characters long: use 8 to 60/);
    expect(() => book.set("vm-a", "x".repeat(61), 60, "keep")).toThrow(/61 characters/);
    expect(() => book.set("vm-a", "tïcket-ünicode", 60, "keep")).toThrow(/printable ASCII/);
    expect(() => book.set("vm-a", "ticket-aaaa", 0, "keep")).toThrow(/expires_in_s 0 is outside/);
    expect(() => book.set("vm-a", "ticket-aaaa", 40_000_000, "keep")).toThrow(/outside 1..31536000/);
  });
});

describe("connection info", () => {
  it("gives a spice:// uri and a .vv file with the live ticket only", () => {
    const plain = connectionInfo({ host: "127.0.0.1", port: 5900 }, { vmId: "web-1", name: "web" }, { value: "ticket-aaaa", live: true, expiresAt: new Date(5000) });
    expect(plain.uri).toBe("spice://127.0.0.1:5900");
    expect(plain.vv.split("\n")).toEqual(expect.arrayContaining(["[virt-viewer]", "type=spice", "host=127.0.0.1", "port=5900", "password=ticket-aaaa", "delete-this-file=1"]));
    expect(plain.vv).not.toMatch(/tls-port/);
    const expired = connectionInfo({ host: "127.0.0.1", port: 5900 }, { vmId: "web-1", name: "web" }, { value: "ticket-aaaa", live: false });
    expect(expired.vv).not.toMatch(/password=/);
    expect(expired.ticketSet).toBe(false);
  });

  it("gives spice+tls:// with the CA that signed the agent's certificate, on one line in the .vv", () => {
    const pki = makePki(tempDir("pki"));
    const cert = readFileSync(pki.serverCert);
    const ca = caOf(cert, [readFileSync(pki.caCert)]);
    expect(ca).toBeDefined();
    expect(new X509Certificate(ca!.caPem).subject).toBe(new X509Certificate(readFileSync(pki.caCert)).subject);
    // The client CA of mutual TLS is no candidate when it did not sign the server certificate.
    expect(caOf(cert, [readFileSync(pki.strangerCert)])).toBeUndefined();
    const info = connectionInfo({ host: "::1", tlsPort: 5901, ...ca }, { vmId: "web-1", name: "web" }, { value: "ticket-aaaa", live: true });
    expect(info.uri).toBe("spice+tls://[::1]:5901");
    const caLine = info.vv.split("\n").find((l) => l.startsWith("ca="))!;
    expect(caLine).toMatch(/^ca=-----BEGIN CERTIFICATE-----\\n.+\\n-----END CERTIFICATE-----$/);
    expect(info.vv).toMatch(/\nhost-subject=.*CN=/);
    expect(info.vv).not.toMatch(/\nport=/);
  });
});
