// A stray connection to a helper's control socket (a socat, a health probe, a confused script): raw
// bytes in, whatever the helper answers collected, and the moment the helper closes it.
import net from "node:net";
import { splitFrames, type Frame } from "../../agent/src/vm/helper-protocol.js";

export interface Stray {
  /** Frames the helper sent back (error replies). */
  replies: Frame[];
  /** Resolves when the helper has closed the connection. */
  closed: Promise<void>;
  send(bytes: Uint8Array): void;
  destroy(): void;
}

/** Connects to a control socket without saying anything (send() says what the test wants). */
export async function strayConnection(socketPath: string): Promise<Stray> {
  const socket = net.createConnection({ path: socketPath });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const replies: Frame[] = [];
  let buf: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    const { frames, rest } = splitFrames(Buffer.concat([buf, chunk]));
    buf = rest;
    replies.push(...frames);
  });
  socket.on("error", () => undefined); // a reset after the refusal is expected
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return { replies, closed, send: (b) => socket.write(b), destroy: () => socket.destroy() };
}

/** The error name of a refusal reply ({"code","name","message"}). */
export const refusalName = (f: Frame): string => (JSON.parse(f.payload.toString()) as { name: string }).name;
