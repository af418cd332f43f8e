// DisplayService: thin handlers that validate, call display/ and map its typed errors to statuses.
import type * as grpc from "@grpc/grpc-js";
import {
  Codec,
  ImageType,
  ScreenshotFormat,
  type DisplayServiceServer,
  type DisplayUpdate,
  type StreamDisplayRequest,
  type InputEvent,
} from "../gen/qumra/v1/display.js";
import { invalidArgument, unimplemented } from "../errors.js";
import { DEFAULT_GLZ_WINDOW } from "../codec/glz.js";
import { DisplayHubs } from "../display/display-hub.js";
import { HelperDisplaySource, toFramebufferInfo } from "../display/helper-source.js";
import { takeScreenshot, type ScreenshotFormat as Format } from "../display/screenshot.js";
import { MAX_INPUT_EVENTS, deliverInput, planInput, type InputEventData } from "../display/input.js";
import type { CodecChoice, DisplayUpdateData, RectCodec } from "../display/types.js";
import type { UpdateSink } from "../display/viewer.js";
import type { VmManager } from "../vm/manager.js";
import { unary, serverStream } from "./status.js";

export const MAX_GLZ_WINDOW_PIXELS = 16_777_216;

const CODEC_CHOICE: Partial<Record<Codec, CodecChoice>> = {
  [Codec.CODEC_UNSPECIFIED]: "auto",
  [Codec.CODEC_RAW]: "raw",
  [Codec.CODEC_QUIC]: "quic",
  [Codec.CODEC_LZ]: "lz",
  [Codec.CODEC_GLZ]: "glz",
};
const CODEC_PB: Record<RectCodec, Codec> = { raw: Codec.CODEC_RAW, quic: Codec.CODEC_QUIC, lz: Codec.CODEC_LZ, glz: Codec.CODEC_GLZ };
const FORMATS: Partial<Record<ScreenshotFormat, Format>> = {
  [ScreenshotFormat.SCREENSHOT_FORMAT_UNSPECIFIED]: "png",
  [ScreenshotFormat.SCREENSHOT_FORMAT_PNG]: "png",
  [ScreenshotFormat.SCREENSHOT_FORMAT_PPM]: "ppm",
  [ScreenshotFormat.SCREENSHOT_FORMAT_RAW]: "raw",
};

export function streamOptions(req: StreamDisplayRequest): { codec: CodecChoice; maxFps: number; glzWindowPixels: number } {
  const codec = CODEC_CHOICE[req.codec];
  if (!codec) throw invalidArgument(`codec ${req.codec} is not a known Codec`);
  if (req.maxFps > 120) throw invalidArgument(`max_fps ${req.maxFps} is outside 1..120 (0 means 30)`);
  if (req.glzWindowPixels > MAX_GLZ_WINDOW_PIXELS) throw invalidArgument(`glz_window_pixels ${req.glzWindowPixels} is above ${MAX_GLZ_WINDOW_PIXELS}`);
  return { codec, maxFps: req.maxFps || 30, glzWindowPixels: req.glzWindowPixels || DEFAULT_GLZ_WINDOW };
}

export function updateToPb(u: DisplayUpdateData): DisplayUpdate {
  return {
    sequence: BigInt(u.sequence),
    time: u.time,
    keyframe: u.keyframe,
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
      default:
        throw invalidArgument(`events[${i}] is empty: set key, pointer or text`);
    }
  });
}

/** StreamDisplay over any set of hubs (the VMs' in the agent; a scripted framebuffer in tests and benchmarks). */
export function streamDisplayHandler(hubs: DisplayHubs): DisplayServiceServer["streamDisplay"] {
  return serverStream(async (req: StreamDisplayRequest, call: grpc.ServerWritableStream<StreamDisplayRequest, DisplayUpdate>) => {
    const options = streamOptions(req);
    const { viewer, release } = await hubs.attach(req.vmId, options);
    const stopOnCancel = (): void => viewer.stop();
    call.once("cancelled", stopOnCancel);
    try {
      await viewer.run(streamSink(call));
    } finally {
      call.off("cancelled", stopOnCancel);
      release();
    }
  });
}

export function displayService(vms: VmManager): DisplayServiceServer {
  const hubs = new DisplayHubs((vmId) => new HelperDisplaySource(vms.displayPort(vmId, "show the display of"), vmId));

  return {
    streamDisplay: streamDisplayHandler(hubs),

    screenshot: unary(async (req) => {
      const format = FORMATS[req.format];
      if (!format) throw invalidArgument(`format ${req.format} is not a known ScreenshotFormat`);
      const info = toFramebufferInfo(await vms.displayPort(req.vmId, "take a screenshot of").info(), req.vmId);
      const shot = takeScreenshot(info, format);
      return { width: shot.width, height: shot.height, format: req.format || ScreenshotFormat.SCREENSHOT_FORMAT_PNG, data: shot.data };
    }),

    sendInput: unary(async (req) => {
      const events = inputFromPb(req.events);
      planInput(events, { width: 65536, height: 65536 }); // arguments first: INVALID_ARGUMENT before NOT_FOUND
      const port = vms.displayPort(req.vmId, "send input to");
      const hasPointer = events.some((e) => e.kind === "pointer");
      const screen = hasPointer ? toFramebufferInfo(await port.info(), req.vmId) : { width: 65536, height: 65536 };
      await deliverInput(port, planInput(events, screen));
      return {};
    }),

    setDisplayTicket: unary(async () => {
      throw unimplemented("SetDisplayTicket is not implemented yet: display tickets arrive with the SPICE server");
    }),
  };
}
