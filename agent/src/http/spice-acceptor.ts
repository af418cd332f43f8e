// What the --http listener hands each SPICE WebSocket to, and the path it serves them on. The acceptor is
// declared by shape, so this listener needs nothing from the SPICE server's module: its accept() fits.
import type { Duplex } from "node:stream";

export interface SpiceTransport {
  kind: "tcp" | "tls" | "websocket" | "websocket+tls";
  /** The client's address, host:port. */
  peer: string;
  /** Set when the transport itself names the VM (the WebSocket path does). */
  vmId?: string;
}

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
