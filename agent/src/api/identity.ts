// Who is calling, as names the policy matches: the unix socket used, or the client certificate's
// subject CN and SAN URIs (e.g. SPIFFE IDs), or the address of a plaintext development listener.
import type { PeerCertificate } from "node:tls";
import path from "node:path";

/** The listener a call came in on; each listener is its own gRPC server, so this is always known. */
export type Listener =
  | { kind: "unix"; path: string; readOnly: boolean }
  | { kind: "tls"; address: string }
  | { kind: "plaintext"; address: string };

export function listenerName(listener: Listener): string {
  return listener.kind === "unix" ? `unix:${listener.path}` : `${listener.kind === "tls" ? "tcp+mtls" : "tcp-plaintext"}:${listener.address}`;
}

/** The caller's names, most specific first; empty when a TLS peer sent no verified certificate. */
export function callerNames(listener: Listener, peerCertificate: PeerCertificate | undefined, peer: string): string[] {
  if (listener.kind === "unix") return [`unix:${path.basename(listener.path)}`];
  if (listener.kind === "plaintext") return [`tcp-plaintext:${peerHost(peer)}`];
  if (!peerCertificate) return [];
  const names: string[] = [];
  const cn = peerCertificate.subject?.CN;
  for (const value of Array.isArray(cn) ? cn : cn ? [cn] : []) names.push(`CN=${value}`);
  for (const uri of sanUris(peerCertificate.subjectaltname)) names.push(`URI:${uri}`);
  return names;
}

/** The URI entries of Node's "DNS:a, URI:spiffe://x/y, IP Address:…" subjectaltname text. */
function sanUris(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  return subjectAltName
    .split(/,\s*/)
    .filter((entry) => entry.startsWith("URI:"))
    .map((entry) => entry.slice(4).replace(/^"(.*)"$/, "$1"));
}

/** "ipv4:127.0.0.1:5000" / "127.0.0.1:5000" / "[::1]:5000" → the host part. */
function peerHost(peer: string): string {
  const bare = peer.replace(/^ipv[46]:/, "");
  const m = /^\[(.*)\]:\d+$/.exec(bare) ?? /^(.*):\d+$/.exec(bare);
  return m ? m[1] : bare;
}
