// StreamDisplay as an async iterable of updates, and optionally of decoded screens: every rect is
// decoded (client/frame-decoder.ts, the WASM codecs) into one BGRX screen that the iterator hands out.
import { Codec, type DisplayServiceClient, type DisplayUpdate, type StreamDisplayRequest } from "../agent/src/gen/qumra/v1/display.js";
import { codecModule } from "../agent/src/codec/wasm-module.js";
import { useNodeCodecModule } from "../agent/src/codec/node-codec-module.js";
import { DEFAULT_GLZ_WINDOW } from "../agent/src/codec/glz.js";
import type { RectCodec } from "../agent/src/display/types.js";
import { FrameDecoder, type RectToDecode } from "./frame-decoder.js";
import { StreamIterator } from "./stream-iterator.js";

export type DisplayRequest = Partial<StreamDisplayRequest> & { vmId: string };

export interface DecodedFrame {
  update: DisplayUpdate;
  width: number;
  height: number;
  /** The whole screen after this update: BGRX rows, stride width × 4. Valid until the next item. */
  pixels: Uint8Array;
}

export type DisplayStream<T> = AsyncIterableIterator<T> & { cancel(): void; ended: Promise<void> };

const RECT_CODECS: Partial<Record<Codec, RectCodec>> = { [Codec.CODEC_RAW]: "raw", [Codec.CODEC_QUIC]: "quic", [Codec.CODEC_LZ]: "lz", [Codec.CODEC_GLZ]: "glz" };

export function streamDisplay(client: DisplayServiceClient, request: DisplayRequest): DisplayStream<DisplayUpdate> {
  if (!request.vmId) throw new RangeError("streamDisplay: vmId is empty");
  const it = new StreamIterator<DisplayUpdate>(client.streamDisplay({ maxFps: 0, imageCompression: 0, ...request }), "DisplayService/StreamDisplay", 4);
  return it;
}

/** The updates, each applied to a local screen. A rect that does not decode ends the stream with its error. */
export function streamDecodedDisplay(client: DisplayServiceClient, request: DisplayRequest): DisplayStream<DecodedFrame> {
  ensureCodecModule();
  const updates = streamDisplay(client, request);
  const decoder = new FrameDecoder(request.decoder ? request.decoder.glzWindowPixels : DEFAULT_GLZ_WINDOW);
  const frames: DisplayStream<DecodedFrame> = {
    async next() {
      const r = await updates.next();
      if (r.done) return r;
      const u = r.value;
      try {
        decoder.apply(u.width, u.height, u.rects.map((rect): RectToDecode => {
          const codec = RECT_CODECS[rect.codec];
          if (!codec) throw new Error(`display update ${u.sequence}: a rect with unknown codec ${rect.codec}`);
          return { x: rect.x, y: rect.y, width: rect.width, height: rect.height, codec, data: rect.data };
        }));
      } catch (err) {
        updates.cancel();
        throw err;
      }
      return { done: false, value: { update: u, width: decoder.width, height: decoder.height, pixels: decoder.pixels } };
    },
    return: async () => (updates.cancel(), { done: true as const, value: undefined }),
    cancel: () => updates.cancel(),
    ended: updates.ended,
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return frames;
}

/** Decoding needs the compiled codec module: in Node, from dist/wasm/codecs.wasm unless the process set one. */
function ensureCodecModule(): void {
  try {
    codecModule();
  } catch {
    useNodeCodecModule();
  }
}
