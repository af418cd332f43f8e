// DisplayService: a thin gRPC adapter over the display domain: validates, converts and maps typed errors.
import type * as grpc from "@grpc/grpc-js";
import {
  Codec,
  ImageCompression,
  ImageType,
  ScreenshotFormat,
  type DecoderCapabilities,
  type DisplayServiceServer,
  type DisplayUpdate,
  type StreamDisplayRequest,
  type InputEvent,
  type SetDisplayTicketRequest,
  type GetDisplayConnectionRequest,
  TicketExpiry,
} from "../gen/qumra/v1/display.js";
import { compressionFromPb } from "./compression.js";
import { QumraError, failedPrecondition, invalidArgument } from "../errors.js";
import { validateVmId } from "../vm/spec.js";
import { connectionInfo, type SpiceAddress } from "../spice/connection-info.js";
import type { TicketBook } from "../spice/tickets.js";
import { DEFAULT_GLZ_WINDOW, MAX_VIEWER_GLZ_WINDOW } from "../codec/glz.js";
import type { DisplayDomain } from "../display/display-domain.js";
import type { ScreenshotFormat as Format } from "../display/screenshot.js";
import { MAX_INPUT_EVENTS, type InputEventData } from "../display/input.js";
import type { DecoderCaps, DisplayUpdateData, ImageCompression as Compression, RectCodec } from "../display/types.js";
import type { UpdateSink, ViewerOptions } from "../display/viewer.js";
import { unary, serverStream } from "./status.js";


const CODEC_PB: Record<RectCodec, Codec> = { raw: Codec.CODEC_RAW, quic: Codec.CODEC_QUIC, lz: Codec.CODEC_LZ, glz: Codec.CODEC_GLZ };
const RECT_CODEC = new Map(Object.entries(CODEC_PB).map(([name, pb]) => [pb, name as RectCodec]));

/** The domain's name of a wire Codec (undefined for CODEC_UNSPECIFIED and unknown values). */
export function rectCodecOf(codec: Codec): RectCodec | undefined {
  return RECT_CODEC.get(codec);
}
const FORMATS: Partial<Record<ScreenshotFormat, Format>> = {
  [ScreenshotFormat.SCREENSHOT_FORMAT_UNSPECIFIED]: "png",
  [ScreenshotFormat.SCREENSHOT_FORMAT_PNG]: "png",
  [ScreenshotFormat.SCREENSHOT_FORMAT_PPM]: "ppm",
  [ScreenshotFormat.SCREENSHOT_FORMAT_RAW]: "raw",
};

/** What a client that states nothing decodes: everything, with spice-gtk's GLZ window. */
export const DEFAULT_DECODER: DecoderCaps = { codecs: ["raw", "quic", "lz", "glz"], glzWindowPixels: DEFAULT_GLZ_WINDOW };

export function decoderFromPb(d: DecoderCapabilities | undefined): DecoderCaps {
  if (!d) return DEFAULT_DECODER;
  const codecs: RectCodec[] = ["raw"];
  d.codecs.forEach((c, i) => {
    const codec = rectCodecOf(c);
    if (!codec) throw invalidArgument(`decoder.codecs[${i}] ${c} is not a known Codec (RAW, QUIC, LZ or GLZ)`);
    if (!codecs.includes(codec)) codecs.push(codec);
  });
  if (d.glzWindowPixels > MAX_VIEWER_GLZ_WINDOW) throw invalidArgument(`decoder.glz_window_pixels ${d.glzWindowPixels} is above ${MAX_VIEWER_GLZ_WINDOW}`);
  return { codecs, glzWindowPixels: codecs.includes("glz") ? d.glzWindowPixels : 0 };
}

export function streamOptions(req: StreamDisplayRequest): ViewerOptions {
  const compression = compressionFromPb(req.imageCompression, "image_compression") ?? "auto_glz";
  if (req.maxFps > 120) throw invalidArgument(`max_fps ${req.maxFps} is outside 1..120 (0 means 30)`);
  return { policy: { compression, decoder: decoderFromPb(req.decoder) }, maxFps: req.maxFps || 30 };
}

export function updateToPb(u: DisplayUpdateData): DisplayUpdate {
  return {
    sequence: BigInt(u.sequence),
    time: u.time,
    keyframe: u.keyframe,
    surfaceChanged: u.surfaceChanged,
    width: u.width,
    height: u.height,
    merged: u.merged,
    rects: u.rects.map((r) => ({
      x: r.x,
      y: r.y,
      width: r.width,
      height: r.height,
      codec: CODEC_PB[r.codec],
      imageType: ImageType.IMAGE_TYPE_RGB32,
      data: r.data,
      glzImageId: BigInt(r.glzImageId),
    })),
  };
}

/**
 * A sink over a server stream: one update at a time. The next is produced only once the previous one's
 * write callback ran (and 'drain' came if write() said the buffer is full), so nothing queues.
 */
export function streamSink(call: grpc.ServerWritableStream<StreamDisplayRequest, DisplayUpdate>): UpdateSink {
  return {
    send: (update) =>
      new Promise<void>((resolve) => {
        let written = false;
        let drained = true;
        const finish = (): void => {
          if (written && drained) {
            call.off("cancelled", cancelled);
            resolve();
          }
        };
        const cancelled = (): void => {
          written = drained = true;
          finish();
        };
        call.once("cancelled", cancelled);
        const ok = call.write(updateToPb(update), () => {
          written = true;
          finish();
        });
        if (!ok) {
          drained = false;
          call.once("drain", () => {
            drained = true;
            finish();
          });
        }
      }),
  };
}

export function inputFromPb(events: InputEvent[]): InputEventData[] {
  if (events.length > MAX_INPUT_EVENTS) throw invalidArgument(`events has ${events.length} entries: at most ${MAX_INPUT_EVENTS} per call`);
  return events.map((e, i): InputEventData => {
    const ev = e.event;
    switch (ev?.$case) {
      case "key":
        return { kind: "key", scancode: ev.value.scancode, pressed: ev.value.pressed };
      case "text":
        return { kind: "text", text: ev.value };
      case "pointer":
        return { kind: "pointer", x: ev.value.x, y: ev.value.y, buttons: ev.value.buttons };
      case "motion":
        return { kind: "motion", dx: ev.value.dx, dy: ev.value.dy, wheel: ev.value.wheel, buttons: ev.value.buttons };
      default:
        throw invalidArgument(`events[${i}] is empty: set key, pointer, text or motion`);
    }
  });
}

/** What SetDisplayTicket and GetDisplayConnection work on. */
export interface DisplayAccess {
  tickets: TicketBook;
  /** The VM's id and name; throws NOT_FOUND. */
  vm(vmId: string): { vmId: string; name: string };
  /** Where the SPICE server listens; undefined when the agent serves no SPICE port. */
  spice(): SpiceAddress | undefined;
  /** Where a VM that migrated away went (its streams end naming it). */
  migratedTo?(vmId: string): string | undefined;
}

const EXPIRY: Partial<Record<TicketExpiry, "keep" | "disconnect">> = {
  [TicketExpiry.TICKET_EXPIRY_UNSPECIFIED]: "keep",
  [TicketExpiry.TICKET_EXPIRY_KEEP]: "keep",
  [TicketExpiry.TICKET_EXPIRY_DISCONNECT]: "disconnect",
};

export function displayService(display: DisplayDomain, access: DisplayAccess): DisplayServiceServer {
  const movedAway = (vmId: string): QumraError | undefined => {
    const to = access.migratedTo?.(vmId);
    return to ? new QumraError("unavailable", `VM '${vmId}' migrated to ${to}; connect to that agent`) : undefined;
  };
  return {
    streamDisplay: serverStream(async (req: StreamDisplayRequest, call: grpc.ServerWritableStream<StreamDisplayRequest, DisplayUpdate>) => {
      const options = streamOptions(req);
      const cancelled = new AbortController();
      const abort = (): void => cancelled.abort();
      call.once("cancelled", abort);
      try {
        await display.watch(req.vmId, options, streamSink(call), cancelled.signal);
      } catch (err) {
        throw movedAway(req.vmId) ?? err;
      } finally {
        call.off("cancelled", abort);
      }
      const moved = movedAway(req.vmId);
      if (moved) throw moved;
    }),

    screenshot: unary(async (req) => {
      const format = FORMATS[req.format];
      if (!format) throw invalidArgument(`format ${req.format} is not a known ScreenshotFormat`);
      const shot = await display.screenshot(req.vmId, format);
      return { width: shot.width, height: shot.height, format: req.format || ScreenshotFormat.SCREENSHOT_FORMAT_PNG, data: Buffer.from(shot.data.buffer, shot.data.byteOffset, shot.data.byteLength) };
    }),

    sendInput: unary(async (req) => {
      await display.sendInput(req.vmId, inputFromPb(req.events));
      return {};
    }),

    setDisplayTicket: unary(async (req: SetDisplayTicketRequest) => {
      validateVmId(req.vmId);
      const onExpiry = EXPIRY[req.onExpiry];
      if (!onExpiry) throw invalidArgument(`on_expiry ${req.onExpiry} is not a known TicketExpiry (KEEP or DISCONNECT)`);
      access.vm(req.vmId);
      if (req.ticket === "") {
        access.tickets.clear(req.vmId);
        return { expiresAt: undefined };
      }
      return access.tickets.set(req.vmId, req.ticket, req.expiresInS || 3600, onExpiry);
    }),
    getDisplayConnection: unary(async (req: GetDisplayConnectionRequest) => {
      validateVmId(req.vmId);
      const vm = access.vm(req.vmId);
      const address = access.spice();
      if (!address) throw failedPrecondition("this agent serves no SPICE port: start it with --spice HOST:PORT (and --spice-tls-port for TLS)");
      return connectionInfo(address, vm, access.tickets.status(req.vmId));
    }),
  };
}
