// What a controller hands a user to reach a VM's screen with a stock SPICE client: the address, the TLS
// port and the CA that signed the agent's certificate, and a virt-viewer connection file (.vv).
import { X509Certificate } from "node:crypto";
import os from "node:os";

/** Where the agent's SPICE server listens (undefined fields: not served). */
export interface SpiceAddress {
  host: string;
  port?: number;
  tlsPort?: number;
  /** PEM of the CA a client should trust for the TLS port, and its subject. */
  caPem?: string;
  caSubject?: string;
  /** The agent certificate's subject, for virt-viewer's host-subject check. */
  hostSubject?: string;
  /** The --http listener's WebSocket path for a VM, when there is one. */
  websocketPath?: (vmId: string) => string;
}

export interface DisplayConnectionInfo {
  host: string;
  port: number;
  tlsPort: number;
  caPem: string;
  caSubject: string;
  uri: string;
  ticketSet: boolean;
  ticketExpiresAt?: Date;
  vv: string;
  websocketPath: string;
}

/** A wildcard listen address is no address to hand out: answer with this host's name instead. */
export function connectableHost(host: string): string {
  return host === "0.0.0.0" || host === "::" || host === "" ? os.hostname() : host;
}

/** The CA for the agent's certificate: the first of `candidates` (PEM, may hold several) that issued it; itself when self-signed. */
export function caOf(certPem: Buffer, candidates: Buffer[]): { caPem: string; caSubject: string; hostSubject: string } | undefined {
  const leaf = new X509Certificate(certPem);
  const pems = [...candidates, certPem].flatMap((b) => b.toString("utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []);
  for (const pem of pems) {
    const ca = new X509Certificate(pem);
    if (leaf.checkIssued(ca) && leaf.verify(ca.publicKey)) return { caPem: `${pem}\n`, caSubject: oneLine(ca.subject), hostSubject: oneLine(leaf.subject) };
  }
  return undefined;
}

/** "C=XX\nO=qumra\nCN=host" (node's form) → "C=XX,O=qumra,CN=host" (the form virt-viewer's host-subject takes). */
function oneLine(subject: string): string {
  return subject.split("\n").join(",");
}

export function connectionInfo(
  address: SpiceAddress,
  vm: { vmId: string; name: string },
  ticket: { value?: string; expiresAt?: Date; live: boolean },
): DisplayConnectionInfo {
  const host = connectableHost(address.host);
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const uri = address.tlsPort ? `spice+tls://${hostPart}:${address.tlsPort}` : `spice://${hostPart}:${address.port}`;
  const lines = ["[virt-viewer]", "type=spice", `host=${host}`];
  if (address.port) lines.push(`port=${address.port}`);
  if (address.tlsPort) {
    lines.push(`tls-port=${address.tlsPort}`);
    if (address.caPem) lines.push(`ca=${address.caPem.trim().replaceAll("\n", "\\n")}`);
    if (address.hostSubject) lines.push(`host-subject=${address.hostSubject}`);
  }
  if (ticket.live && ticket.value) lines.push(`password=${ticket.value}`);
  lines.push(`title=${vm.name} (${vm.vmId}) - %d - Press %s to release the cursor`, "delete-this-file=1", "secure-attention=ctrl+alt+end", "release-cursor=shift+f12", "");
  return {
    host,
    port: address.port ?? 0,
    tlsPort: address.tlsPort ?? 0,
    caPem: address.caPem ?? "",
    caSubject: address.caSubject ?? "",
    uri,
    ticketSet: ticket.live,
    ticketExpiresAt: ticket.live ? ticket.expiresAt : undefined,
    vv: lines.join("\n"),
    websocketPath: address.websocketPath?.(vm.vmId) ?? "",
  };
}
