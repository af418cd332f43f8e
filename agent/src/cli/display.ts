// qumra display ticket|connect|screenshot|stream|input: a VM's screen, its keyboard and pointer, and how SPICE clients reach it.
import type { Command } from "commander";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import {
  Codec,
  DisplayServiceClient,
  ImageCompression,
  ScreenshotFormat,
  TicketExpiry,
  type DisplayUpdate,
  type InputEvent,
  type StreamDisplayRequest,
} from "../gen/qumra/v1/display.js";
import { FrameDecoder, type RectToDecode } from "../../../client/frame-decoder.js";
import { DEFAULT_GLZ_WINDOW, MAX_VIEWER_GLZ_WINDOW } from "../codec/glz.js";
import { MAX_MOTION_DELTA, MAX_MOTION_WHEEL } from "../display/input.js";
import type { RectCodec } from "../display/types.js";
import { percentile, round } from "../stats.js";
import { rectCodecOf } from "../api/display-service.js";
import { callUnary, type GlobalOptions } from "./connection.js";
import { withClients, toJson } from "./fan-out.js";
import { bytes, fields, table } from "./format.js";
import { collect, parseIntIn } from "./parse.js";

type Globals = () => GlobalOptions;

/** spice-server's image_compression names. */
export const COMPRESSION_NAMES: Record<string, ImageCompression> = {
  auto_glz: ImageCompression.IMAGE_COMPRESSION_AUTO_GLZ,
  auto_lz: ImageCompression.IMAGE_COMPRESSION_AUTO_LZ,
  quic: ImageCompression.IMAGE_COMPRESSION_QUIC,
  glz: ImageCompression.IMAGE_COMPRESSION_GLZ,
  lz: ImageCompression.IMAGE_COMPRESSION_LZ,
  off: ImageCompression.IMAGE_COMPRESSION_OFF,
};

export function compressionNamed(name: string, flag: string): ImageCompression {
  const value = COMPRESSION_NAMES[name];
  if (value === undefined) throw new Error(`${flag} ${name}: expected one of ${Object.keys(COMPRESSION_NAMES).join(", ")}`);
  return value;
}
const DECODABLE: Record<string, Codec> = { quic: Codec.CODEC_QUIC, lz: Codec.CODEC_LZ, glz: Codec.CODEC_GLZ };
const FORMAT_NAMES: Record<string, ScreenshotFormat> = { png: ScreenshotFormat.SCREENSHOT_FORMAT_PNG, ppm: ScreenshotFormat.SCREENSHOT_FORMAT_PPM, raw: ScreenshotFormat.SCREENSHOT_FORMAT_RAW };

/** An update's rects as the frame decoder takes them. */
export function rectsOf(update: DisplayUpdate): RectToDecode[] {
  return update.rects.map((r) => {
    const codec = rectCodecOf(r.codec);
    if (!codec) throw new Error(`update ${update.sequence}: rect with unknown codec ${r.codec}`);
    return { x: r.x, y: r.y, width: r.width, height: r.height, codec, data: r.data };
  });
}

export interface StreamStats {
  updates: number;
  keyframes: number;
  seconds: number;
  fps: number;
  bytes: number;
  bytesPerSecond: number;
  bytesPerUpdate: number;
  merged: number;
  rects: Record<RectCodec, number>;
  rectBytes: Record<RectCodec, number>;
  /** From the update's time (set by the agent) to the end of its decode here. */
  latencyMs: { p50: number; p99: number };
  width: number;
  height: number;
}

export interface WatchOptions {
  /** Stop after this many updates (default: until the stream ends). */
  frames?: number;
  /** Called after each update is decoded into `decoder.pixels`. */
  onUpdate?: (update: DisplayUpdate, decoder: FrameDecoder, latencyMs: number) => void;
  /** Stop when this resolves. */
  until?: Promise<unknown>;
}

/** Streams a display, decoding every rect into a local framebuffer; resolves with the stream's statistics. */
export function watchDisplay(client: DisplayServiceClient, request: StreamDisplayRequest, options: WatchOptions = {}): Promise<StreamStats> {
  const decoder = new FrameDecoder(request.decoder ? request.decoder.glzWindowPixels : DEFAULT_GLZ_WINDOW);
  const stats: StreamStats = {
    updates: 0, keyframes: 0, seconds: 0, fps: 0, bytes: 0, bytesPerSecond: 0, bytesPerUpdate: 0, merged: 0,
    rects: { raw: 0, quic: 0, lz: 0, glz: 0 }, rectBytes: { raw: 0, quic: 0, lz: 0, glz: 0 }, latencyMs: { p50: 0, p99: 0 }, width: 0, height: 0,
  };
  const latencies: number[] = [];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const stream = client.streamDisplay(request);
    let finished = false;
    const finish = (err?: Error): void => {
      if (finished) return;
      finished = true;
      stream.cancel();
      stats.seconds = round((performance.now() - started) / 1000, 3);
      stats.fps = round(stats.updates / Math.max(stats.seconds, 1e-9), 1);
      stats.bytesPerSecond = Math.round(stats.bytes / Math.max(stats.seconds, 1e-9));
      stats.bytesPerUpdate = stats.updates ? Math.round(stats.bytes / stats.updates) : 0;
      stats.latencyMs = { p50: round(percentile(latencies, 50), 2), p99: round(percentile(latencies, 99), 2) };
      if (err) reject(err);
      else resolve(stats);
    };
    stream.on("data", (u: DisplayUpdate) => {
      if (finished) return;
      try {
        decoder.apply(u.width, u.height, rectsOf(u));
      } catch (err) {
        return finish(err as Error);
      }
      const latency = Date.now() - (u.time?.getTime() ?? Date.now());
      latencies.push(latency);
      stats.updates++;
      if (u.keyframe) stats.keyframes++;
      stats.merged += u.merged;
      stats.width = u.width;
      stats.height = u.height;
      for (const r of u.rects) {
        const c = rectCodecOf(r.codec)!;
        stats.rects[c]++;
        stats.rectBytes[c] += r.data.length;
        stats.bytes += r.data.length;
      }
      options.onUpdate?.(u, decoder, latency);
      if (options.frames !== undefined && stats.updates >= options.frames) finish();
    });
    stream.on("error", (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? finish() : finish(err)));
    stream.on("end", () => finish());
    void options.until?.then(() => finish());
  });
}

function renderStats(s: StreamStats): string {
  const codecs = (Object.keys(s.rects) as RectCodec[]).filter((c) => s.rects[c] > 0);
  return [
    fields([
      ["screen", `${s.width}x${s.height}`],
      ["updates", `${s.updates} in ${s.seconds} s (${s.fps} fps), ${s.keyframes} keyframe(s), ${s.merged} merged`],
      ["bytes", `${bytes(s.bytes)} (${bytes(s.bytesPerSecond)}/s, ${bytes(s.bytesPerUpdate)} per update)`],
      ["latency", `p50 ${s.latencyMs.p50} ms, p99 ${s.latencyMs.p99} ms (update time → decoded here)`],
    ]),
    table(["CODEC", "RECTS", "BYTES"], codecs.map((c) => [c, s.rects[c], s.rectBytes[c]])),
  ].join("\n");
}

/** "out.png" for one host; "out-HOST_PORT.png" per host when there are several. */
function fileFor(file: string, host: string, hosts: number): string {
  if (hosts === 1) return file;
  const ext = path.extname(file);
  return `${file.slice(0, file.length - ext.length)}-${host.replace(/[^A-Za-z0-9.-]+/g, "_")}${ext}`;
}

/** "X,Y" or "X,Y,BUTTONS" → a pointer event. */
export function parsePointer(text: string): InputEvent {
  const m = /^(\d+),(\d+)(?:,(\d+))?$/.exec(text);
  if (!m) throw new Error(`--pointer ${text}: expected X,Y or X,Y,BUTTONS`);
  return { event: { $case: "pointer", value: { x: Number(m[1]), y: Number(m[2]), buttons: parseIntIn(m[3] ?? "0", "--pointer buttons", 0, 7) } } };
}

/** "DX,DY", "DX,DY,BUTTONS" or "DX,DY,BUTTONS,WHEEL" → a relative motion of the guest's mouse (dy positive down). */
export function parseMotion(text: string): InputEvent {
  const m = /^(-?\d+),(-?\d+)(?:,(\d+)(?:,(-?\d+))?)?$/.exec(text);
  if (!m) throw new Error(`--motion ${text}: expected DX,DY[,BUTTONS[,WHEEL]]`);
  return {
    event: {
      $case: "motion",
      value: {
        dx: parseIntIn(m[1]!, "--motion dx", -MAX_MOTION_DELTA, MAX_MOTION_DELTA),
        dy: parseIntIn(m[2]!, "--motion dy", -MAX_MOTION_DELTA, MAX_MOTION_DELTA),
        buttons: parseIntIn(m[3] ?? "0", "--motion buttons", 0, 7),
        wheel: parseIntIn(m[4] ?? "0", "--motion wheel", -MAX_MOTION_WHEEL, MAX_MOTION_WHEEL),
      },
    },
  };
}

export function registerDisplay(program: Command, globals: Globals): void {
  const display = program.command("display").description("a VM's screen: screenshots, live streams, keyboard and pointer input, SPICE tickets");

  display
    .command("ticket <vm-id>")
    .description("set the ticket (password) a SPICE client presents for this VM; with neither --ticket nor --random, clear it")
    .option("--ticket <text>", "the ticket: 8 to 60 printable ASCII characters")
    .option("--random", "make a random ticket and print it")
    .option("--ttl <seconds>", "lifetime, 1..31536000", "3600")
    .option("--disconnect-on-expiry", "drop the clients that linked with it when it expires (default: they stay)")
    .action(async (vmId: string, o: { ticket?: string; random?: boolean; ttl: string; disconnectOnExpiry?: boolean }) => {
      const options = globals();
      if (o.ticket !== undefined && o.random) throw new Error("give --ticket TEXT or --random, not both");
      const expiresInS = parseIntIn(o.ttl, "--ttl", 1, 31_536_000);
      const onExpiry = o.disconnectOnExpiry ? TicketExpiry.TICKET_EXPIRY_DISCONNECT : TicketExpiry.TICKET_EXPIRY_KEEP;
      await withClients(options, DisplayServiceClient, async (c) => {
        // One random ticket per host: tickets pick the VM on each agent's shared SPICE port.
        const ticket = o.random ? randomBytes(18).toString("base64url") : (o.ticket ?? "");
        const reply = await callUnary(c.setDisplayTicket.bind(c), { vmId, ticket, expiresInS, onExpiry }, options);
        return { vmId, ticket, expiresAt: reply.expiresAt?.toISOString() ?? null };
      }, (r) => (r.ticket ? `${r.vmId}: ticket ${r.ticket} valid until ${r.expiresAt}` : `${r.vmId}: ticket cleared (no new SPICE client can link)`));
    });

  display
    .command("connect <vm-id>")
    .description("how to reach the VM's screen with a SPICE client: prints spice://..., or writes a virt-viewer .vv file")
    .option("--vv <file>", "write the connection file for remote-viewer here (it holds the ticket: keep it private)")
    .action(async (vmId: string, o: { vv?: string }) => {
      const options = globals();
      await withClients(options, DisplayServiceClient, async (c, host) => {
        const info = await callUnary(c.getDisplayConnection.bind(c), { vmId }, options);
        const file = o.vv ? fileFor(o.vv, host, options.host.length) : undefined;
        if (file) writeFileSync(file, info.vv, { mode: 0o600 });
        return {
          vmId,
          uri: info.uri,
          host: info.host,
          port: info.port,
          tlsPort: info.tlsPort,
          caSubject: info.caSubject,
          ticketSet: info.ticketSet,
          ticketExpiresAt: info.ticketExpiresAt?.toISOString() ?? null,
          websocketPath: info.websocketPath,
          vvFile: file ?? null,
        };
      }, (r) => {
        const lines = [r.uri];
        if (!r.ticketSet) lines.push(`(no live ticket: set one with 'qumra display ticket ${r.vmId} --random')`);
        if (r.vvFile) lines.push(`connection file written to ${r.vvFile}: remote-viewer ${r.vvFile}`);
        return lines.join("\n");
      });
    });

  display
    .command("screenshot <vm-id>")
    .description("save the whole screen (with several --host, one file per host: NAME-HOST.EXT)")
    .requiredOption("-o, --out <file>", "output file")
    .option("--format <format>", "png|ppm|raw (default: from the file's extension, else png)")
    .action(async (vmId: string, o: { out: string; format?: string }) => {
      const options = globals();
      const name = (o.format ?? path.extname(o.out).slice(1).toLowerCase()) || "png";
      const format = FORMAT_NAMES[name] ?? (o.format ? undefined : ScreenshotFormat.SCREENSHOT_FORMAT_PNG);
      if (format === undefined) throw new Error(`--format ${o.format}: expected png, ppm or raw`);
      await withClients(options, DisplayServiceClient, async (c, host) => {
        const shot = await callUnary(c.screenshot.bind(c), { vmId, format }, options);
        const file = fileFor(o.out, host, options.host.length);
        writeFileSync(file, shot.data);
        return { vmId, file, width: shot.width, height: shot.height, format: Object.keys(FORMAT_NAMES).find((k) => FORMAT_NAMES[k] === shot.format) ?? "png", bytes: shot.data.length };
      }, (r) => `${r.width}x${r.height} ${r.format} screenshot of ${r.vmId}: ${bytes(r.bytes)} written to ${r.file}`);
    });

  display
    .command("stream <vm-id>")
    .description("stream the screen, decoding every update here; prints each update, or with --stats a summary")
    .option("--compression <mode>", `image compression, spice-server's names: ${Object.keys(COMPRESSION_NAMES).join("|")}`, "auto_glz")
    .option("--decode <list>", "codecs this client decodes besides raw (comma-separated quic,lz,glz; '' for raw only)", "quic,lz,glz")
    .option("--glz-window <pixels>", "this client's GLZ dictionary size in pixels (0: no GLZ)", String(DEFAULT_GLZ_WINDOW))
    .option("--frames <n>", "stop after this many updates (default: until the VM stops or Ctrl-C)")
    .option("--max-fps <n>", "updates per second at most, 1..120", "30")
    .option("--stats", "print only the summary: fps, bytes/s, rects per codec, latency")
    .action(async (vmId: string, o: { compression: string; decode: string; frames?: string; maxFps: string; glzWindow: string; stats?: boolean }) => {
      const options = globals();
      const imageCompression = compressionNamed(o.compression, "--compression");
      const codecs = o.decode.split(",").map((c) => c.trim()).filter(Boolean).map((c) => {
        const codec = DECODABLE[c];
        if (codec === undefined) throw new Error(`--decode ${o.decode}: '${c}' is not one of quic, lz, glz`);
        return codec;
      });
      const frames = o.frames === undefined ? undefined : parseIntIn(o.frames, "--frames", 1, 1e9);
      const maxFps = parseIntIn(o.maxFps, "--max-fps", 1, 120);
      const glzWindowPixels = parseIntIn(o.glzWindow, "--glz-window", 0, MAX_VIEWER_GLZ_WINDOW);
      const multi = options.host.length > 1;
      const interrupted = new Promise<void>((resolve) => process.once("SIGINT", resolve));
      await withClients(options, DisplayServiceClient, (c, host) =>
        watchDisplay(c, { vmId, imageCompression, maxFps, decoder: { codecs, glzWindowPixels } }, {
          frames,
          until: interrupted,
          onUpdate: o.stats ? undefined : (u, _d, latency) => {
            const view = { sequence: Number(u.sequence), keyframe: u.keyframe, rects: u.rects.length, bytes: u.rects.reduce((n, r) => n + r.data.length, 0), merged: u.merged, latencyMs: latency };
            if (options.json) console.log(toJson(multi ? { host, ...view } : view, 0));
            else console.log(`${multi ? `${host}  ` : ""}#${view.sequence}${u.keyframe ? " keyframe" : ""} ${view.rects} rect(s) ${bytes(view.bytes)}${u.merged ? ` merged ${u.merged}` : ""} ${latency} ms`);
          },
        }), { text: renderStats });
    });

  display
    .command("input <vm-id>")
    .description("type text, move the pointer and the mouse (events are delivered in order: keys, then pointer moves, then mouse motions)")
    .option("--keys <text>", "text to type on a US layout (\\n for Enter)")
    .option("--pointer <x,y[,buttons]>", "pointer position and buttons (bit 0 left, 1 right, 2 middle), repeatable", collect)
    .option("--motion <dx,dy[,buttons[,wheel]]>", "relative mouse motion in pixels (dy positive down; wheel positive scrolls down), repeatable", collect)
    .action(async (vmId: string, o: { keys?: string; pointer?: string[]; motion?: string[] }) => {
      const options = globals();
      const events: InputEvent[] = [];
      if (o.keys !== undefined) events.push({ event: { $case: "text", value: o.keys.replaceAll("\\n", "\n") } });
      for (const p of o.pointer ?? []) events.push(parsePointer(p));
      for (const m of o.motion ?? []) events.push(parseMotion(m));
      if (events.length === 0) throw new Error("give --keys TEXT, --pointer X,Y[,BUTTONS] and/or --motion DX,DY[,BUTTONS[,WHEEL]]");
      await withClients(options, DisplayServiceClient, async (c) => {
        await callUnary(c.sendInput.bind(c), { vmId, events }, options);
        return { vmId, events: events.length };
      }, (r) => `sent ${r.events} input event(s) to ${r.vmId}`);
    });
}
