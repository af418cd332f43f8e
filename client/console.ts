// A VM's serial console as an async iterable of output bytes plus write() for input: AttachConsole's
// first message names the VM, the agent replays the scrollback, then live output until the VM stops.
import type { ConsoleOutput, VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { StreamIterator } from "./stream-iterator.js";

/** What the agent takes in one ConsoleInput message; longer writes are split. */
const MAX_INPUT = 65536;

export interface ConsoleChunk {
  data: Buffer;
  /** True for output kept from before this attachment (the scrollback replay). */
  scrollback: boolean;
}

export interface ConsoleSession {
  /** Output as it arrives (scrollback first); ends when the VM stops or close() is called; throws the typed error otherwise. */
  output: AsyncIterable<Buffer>;
  /** The same output with the scrollback flag. Iterate either `output` or `chunks`, not both. */
  chunks: AsyncIterable<ConsoleChunk>;
  /** Types bytes (or UTF-8 text) into the guest's serial port. */
  write(data: Uint8Array | string): void;
  /** Detaches (the VM keeps running). */
  close(): void;
  /** Settles when the attachment is over: resolves on a clean end, rejects with the typed error. */
  ended: Promise<void>;
}

export function attachConsole(client: VmServiceClient, vmId: string): ConsoleSession {
  if (!vmId) throw new RangeError("attachConsole: vmId is empty");
  const stream = client.attachConsole();
  const it = new StreamIterator<ConsoleOutput>(stream, "VmService/AttachConsole");
  stream.write({ vmId, data: Buffer.alloc(0) });
  const chunks: AsyncIterableIterator<ConsoleChunk> = {
    async next() {
      const r = await it.next();
      return r.done ? r : { done: false, value: { data: Buffer.from(r.value.data), scrollback: r.value.scrollback } };
    },
    return: async () => (it.cancel(), { done: true as const, value: undefined }),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  const output: AsyncIterableIterator<Buffer> = {
    async next() {
      const r = await chunks.next();
      return r.done ? r : { done: false, value: r.value.data };
    },
    return: async () => (it.cancel(), { done: true as const, value: undefined }),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return {
    output,
    chunks,
    write(data) {
      if (it.done) throw new Error(`attachConsole ${vmId}: the attachment is over; attach again to type`);
      const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      for (let i = 0; i < bytes.length; i += MAX_INPUT) stream.write({ vmId: "", data: bytes.subarray(i, i + MAX_INPUT) });
    },
    close() {
      it.cancel();
    },
    ended: it.ended,
  };
}
