// A display stream watcher for tests: decodes every update into a local frame and waits for conditions.
import type * as grpc from "@grpc/grpc-js";
import { ImageCompression, type DecoderCapabilities, type DisplayServiceClient, type DisplayUpdate } from "../../agent/src/gen/qumra/v1/display.js";
import { FrameDecoder, firstBgrDifference } from "../../client/frame-decoder.js";
import { rectsOf } from "../../agent/src/cli/display.js";

export interface Watcher {
  updates: DisplayUpdate[];
  decoder: FrameDecoder;
  /** Resolves once pred() holds, checked on every update and every 50 ms (the file may settle after the last update). */
  until(pred: () => boolean, what: string): Promise<void>;
  ended: Promise<"end" | grpc.ServiceError>;
  cancel(): void;
}

export interface WatchOptions {
  vmId: string;
  compression: ImageCompression;
  /** What this client says it decodes (unset: everything, the default GLZ window). */
  decoder?: DecoderCapabilities;
  maxFps: number;
  /** The framebuffer's pixels now, and its width: named in the error when a condition is not reached. */
  filePixels: () => Uint8Array;
  width: number;
  timeoutMs: number;
}

export function watchDisplay(client: DisplayServiceClient, o: WatchOptions): Watcher {
  const decoder = new FrameDecoder(o.decoder?.glzWindowPixels);
  const updates: DisplayUpdate[] = [];
  const checks = new Set<() => void>();
  const stream = client.streamDisplay({ vmId: o.vmId, imageCompression: o.compression, maxFps: o.maxFps, decoder: o.decoder });
  const ended = new Promise<"end" | grpc.ServiceError>((resolve) => {
    stream.on("end", () => resolve("end"));
    stream.on("error", (e: grpc.ServiceError) => resolve(e));
  });
  stream.on("data", (u: DisplayUpdate) => {
    decoder.apply(u.width, u.height, rectsOf(u));
    updates.push(u);
    for (const c of [...checks]) c();
  });
  return {
    updates,
    decoder,
    ended,
    cancel: () => stream.cancel(),
    until: (pred, what) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!pred()) return;
          checks.delete(check);
          clearInterval(ticker);
          clearTimeout(timer);
          resolve();
        };
        const ticker = setInterval(check, 50);
        const timer = setTimeout(() => {
          checks.delete(check);
          clearInterval(ticker);
          const diff = firstBgrDifference(decoder.pixels, o.filePixels(), o.width) ?? "frames equal";
          reject(new Error(`${ImageCompression[o.compression]}: ${what} not reached after ${updates.length} updates: ${diff}`));
        }, o.timeoutMs);
        checks.add(check);
        check();
      }),
  };
}
