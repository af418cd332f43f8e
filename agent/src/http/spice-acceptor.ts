// What the --http listener hands each SPICE WebSocket to, and the path it serves them on. The acceptor is
// declared by shape (SpiceServer's accept() fits), so the listener needs only the SPICE transport's type.
import type { Duplex } from "node:stream";
import type { SpiceTransport } from "../spice/session.js";

export type { SpiceTransport };

export interface SpiceAcceptor {
  /** Takes over `stream` (bytes of one SPICE channel connection); closing it is the acceptor's business from here. */
  accept(stream: Duplex, transport: SpiceTransport): void;
}

const PREFIX = "/spice/";

/** The WebSocket path of a VM's SPICE channels on the --http listener. */
export function spiceWebSocketPath(vmId: string): string {
  return PREFIX + vmId;
}

/** The vm id a request path names ("/spice/VM_ID", query ignored), or undefined for any other path. Not yet validated. */
export function vmIdOfSpicePath(path: string): string | undefined {
  const pathname = path.split("?", 1)[0];
  return pathname.startsWith(PREFIX) ? pathname.slice(PREFIX.length) : undefined;
}
