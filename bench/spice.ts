// qumra bench spice: SPICE display performance as a stock client (spice-gtk) sees it, with Debian's qemu
// as the yardstick in the same run.
// (1) Connect → first complete screen: spice-gtk (bench/spice-client.py) timed from Session.connect()
//     until its canvas has every pixel of the primary surface, median of --runs (after one warm-up), per
//     codec; for qumra a demo VM of --size, for qemu its own SeaBIOS screen (--vs-qemu, quic and auto_glz).
// (2) qumra only: a scripted typing session (SendInput, one character at a time) and full-screen changes
//     (the demo guest's 'f'), with one client staying connected: bytes on the display channel, DRAW_COPY
//     updates per second, bytes per update, and the pipeline latency from SendInput (or 'f') to the
//     DRAW_COPY carrying the change, all counted by a proxy inside the benchmark (bench/spice-proxy.ts).
import { firstScreens, watch } from "./spice-client.js";
import { SpiceProxy, type ProxiedChannel } from "./spice-proxy.js";
import { startQemuSpice } from "./spice-qemu.js";
import { startSpiceAgentVm, typeText, type SpiceAgentVm } from "./spice-agent.js";
import { CHANNEL_MAIN, imageTypeName, intersects, MSG_DISPLAY_DRAW_COPY, type Box, type SpiceMessage } from "./spice-wire.js";
import { withTeardown, type Teardown } from "./teardown.js";
import { median, percentile, round, type Progress } from "./stats.js";

export const SPICE_BENCH_CODECS = ["quic", "lz", "glz", "auto_glz", "off"] as const;
export type SpiceBenchCodec = (typeof SPICE_BENCH_CODECS)[number];
/** The yardstick's settings: qemu's two usual image compressions. */
export const QEMU_CODECS: SpiceBenchCodec[] = ["quic", "auto_glz"];
/** Targets: typing updates under this many bytes and this pipeline latency (p50). */
export const TYPING_MAX_BYTES = 5 * 1024;
export const TYPING_MAX_MS = 16;

export interface FirstScreenRow {
  server: "qumra" | "qemu";
  codec: SpiceBenchCodec;
  width: number;
  height: number;
  runs: number;
  /** Connect → first complete screen in spice-gtk, median and max of the runs. */
  firstMs: number;
  maxMs: number;
  /** The same on the wire (median): the main channel's connect → the DRAW_COPY that brings the drawn area up to the surface's, at the proxy. */
  wireMs: number;
  /** Server→client bytes on the display channel for the first screen (median). */
  bytes: number;
  /** Image types of the DRAW_COPYs seen (what the server actually coded). */
  images: string[];
}

export interface SessionRow {
  codec: SpiceBenchCodec;
  scenario: "typing" | "full screen";
  /** Keys typed or full-screen changes made. */
  changes: number;
  seconds: number;
  /** DRAW_COPY messages on the display channel. */
  updates: number;
  updatesPerSecond: number;
  /** All server→client display-channel bytes in the session (headers included). */
  bytes: number;
  bytesPerSecond: number;
  /** DRAW_COPY messages' own bytes (header + body), mean and max. */
  bytesPerUpdate: number;
  maxUpdateBytes: number;
  /** All display-channel bytes per key or per full-screen change. */
  bytesPerChange: number;
  /** SendInput (or 'f') → the DRAW_COPY carrying the change (typing) / completing 90% of the screen (full). */
  latencyMs: { p50: number; p99: number };
  images: string[];
}

export interface QumraResult {
  codec: SpiceBenchCodec;
  ok: boolean;
  error?: string;
}

export interface Verdict {
  target: string;
  pass: boolean;
  detail: string;
}

export interface SpiceBenchResult {
  first: FirstScreenRow[];
  sessions: SessionRow[];
  /** Ratios of qumra's first-screen time to qemu's (same codec, else qemu's auto_glz). */
  ratios: { codec: SpiceBenchCodec; qemuCodec: SpiceBenchCodec; ratio: number }[];
  verdicts: Verdict[];
  errors: { server: "qumra" | "qemu"; codec: SpiceBenchCodec; message: string }[];
}

export interface SpiceBenchOptions {
  width: number;
  height: number;
  codecs: SpiceBenchCodec[];
  runs: number;
  vsQemu: boolean;
  /** Skip qumra (the yardstick alone). */
  qemuOnly?: boolean;
  /** Characters typed in the typing session. */
  keys: number;
  /** Full-screen changes in the full-screen session. */
  fullChanges: number;
}

const TYPED = "the quick brown fox jumps over the lazy dog 0123456789 ";

function imagesOf(messages: SpiceMessage[]): string[] {
  return [...new Set(messages.filter((m) => m.drawCopy).map((m) => imageTypeName(m.drawCopy!.imageType)))].sort();
}

/** Connect → first complete screen through `proxy`, runs + 1 sessions (the first is a warm-up). */
async function measureFirst(server: "qumra" | "qemu", codec: SpiceBenchCodec, proxy: SpiceProxy, runs: number, password: string | undefined, teardown: Teardown, progress: Progress): Promise<FirstScreenRow> {
  const before = proxy.displays().length;
  const shots = (await firstScreens("127.0.0.1", proxy.port, runs + 1, password, teardown, () => progress.increment())).slice(1);
  const channels = proxy.displays().slice(before + 1);
  const ms = shots.map((s) => s.ms!);
  const wire = channels.map((c) => wireFirstMs(proxy, c)).filter((v) => v !== undefined);
  return {
    server,
    codec,
    width: shots[0].width!,
    height: shots[0].height!,
    runs,
    firstMs: round(median(ms), 1),
    maxMs: round(Math.max(...ms), 1),
    wireMs: round(median(wire), 1),
    bytes: median(channels.map((c) => c.bytesDown)),
    images: imagesOf(channels.flatMap((c) => c.messages)),
  };
}

/** Main channel connect → the DRAW_COPY whose arrival makes the drawn area reach the surface's area. */
function wireFirstMs(proxy: SpiceProxy, display: ProxiedChannel): number | undefined {
  const main = proxy.channels.filter((c) => c.channelType === CHANNEL_MAIN && c.openedAt <= display.openedAt).at(-1);
  const surface = display.messages.find((m) => m.surface)?.surface;
  if (!main || !surface) return undefined;
  let area = 0;
  for (const m of display.messages) {
    if (!m.drawCopy) continue;
    area += m.drawCopy.box.width * m.drawCopy.box.height;
    if (area >= surface.width * surface.height) return m.at - main.openedAt;
  }
  return undefined;
}

async function qemuHalf(codec: SpiceBenchCodec, o: SpiceBenchOptions, result: SpiceBenchResult, progress: Progress): Promise<void> {
  await withTeardown(async (teardown) => {
    const qemu = await startQemuSpice(codec, teardown);
    const proxy = new SpiceProxy({ host: "127.0.0.1", port: qemu.port });
    await proxy.listen();
    teardown.add("proxy", () => proxy.close());
    result.first.push(await measureFirst("qemu", codec, proxy, o.runs, undefined, teardown, progress));
  });
}

/** Display-channel totals since a mark. */
function counter(channel: ProxiedChannel) {
  const mark = { bytes: channel.bytesDown, messages: channel.messages.length, at: performance.now() };
  return () => {
    const messages = channel.messages.slice(mark.messages);
    const updates = messages.filter((m) => m.type === MSG_DISPLAY_DRAW_COPY).map((m) => m.wireBytes);
    return { bytes: channel.bytesDown - mark.bytes, messages, updates, seconds: (performance.now() - mark.at) / 1000 };
  };
}

function sessionRow(codec: SpiceBenchCodec, scenario: SessionRow["scenario"], changes: number, latencies: number[], totals: ReturnType<ReturnType<typeof counter>>): SessionRow {
  return {
    codec,
    scenario,
    changes,
    seconds: round(totals.seconds, 2),
    updates: totals.updates.length,
    updatesPerSecond: round(totals.updates.length / totals.seconds, 1),
    bytes: totals.bytes,
    bytesPerSecond: Math.round(totals.bytes / totals.seconds),
    bytesPerUpdate: Math.round(totals.updates.reduce((a, b) => a + b, 0) / totals.updates.length),
    maxUpdateBytes: Math.max(...totals.updates),
    bytesPerChange: Math.round(totals.bytes / changes),
    latencyMs: { p50: round(percentile(latencies, 50), 1), p99: round(percentile(latencies, 99), 1) },
    images: imagesOf(totals.messages),
  };
}

/** The demo guest's terminal window (native/guest/display.c: W/5, 3H/5, 3W/5 x 3H/10). */
function terminalBox(width: number, height: number): Box {
  return { left: Math.floor(width / 5), top: Math.floor((height * 3) / 5), width: Math.floor((width * 3) / 5), height: Math.floor((height * 3) / 10) };
}

async function typingSession(vm: SpiceAgentVm, proxy: SpiceProxy, channel: ProxiedChannel, codec: SpiceBenchCodec, o: SpiceBenchOptions, progress: Progress): Promise<SessionRow> {
  const term = terminalBox(o.width, o.height);
  const latencies: number[] = [];
  const totals = counter(channel);
  for (let i = 0; i < o.keys; i++) {
    const t0 = performance.now();
    const [hit] = await Promise.all([
      proxy.waitFor(() => channel, (m) => m.drawCopy !== undefined && m.at >= t0 && intersects(m.drawCopy.box, term), 5000, `DRAW_COPY in the terminal after key ${i}`),
      typeText(vm, TYPED[i % TYPED.length]),
    ]);
    latencies.push(hit.at - t0);
    // about 20 keys a second, a fast typist: the next key comes after this one's trailing rects
    await new Promise((r) => setTimeout(r, 50));
    progress.increment();
  }
  return sessionRow(codec, "typing", o.keys, latencies, totals());
}

async function fullScreenSession(vm: SpiceAgentVm, proxy: SpiceProxy, channel: ProxiedChannel, codec: SpiceBenchCodec, o: SpiceBenchOptions, progress: Progress): Promise<SessionRow> {
  const screen = o.width * o.height;
  const latencies: number[] = [];
  const totals = counter(channel);
  for (let i = 0; i < o.fullChanges; i++) {
    const mark = vm.console.text().length;
    const t0 = performance.now();
    let covered = 0;
    const done = proxy.waitFor(() => channel, (m) => {
      if (!m.drawCopy || m.at < t0) return false;
      covered += m.drawCopy.box.width * m.drawCopy.box.height;
      return covered >= 0.9 * screen;
    }, 20_000, `DRAW_COPYs covering 90% of the screen after 'f' ${i}`);
    vm.console.send("f");
    latencies.push((await done).at - t0);
    await vm.console.waitFor("full ", 20_000, mark);
    await proxy.quiet(channel, 100); // the change's last rects belong to it, not to the next one
    progress.increment();
  }
  return sessionRow(codec, "full screen", o.fullChanges, latencies, totals());
}

async function qumraHalf(codec: SpiceBenchCodec, o: SpiceBenchOptions, result: SpiceBenchResult, progress: Progress): Promise<void> {
  await withTeardown(async (teardown) => {
    const vm = await startSpiceAgentVm(codec, o.width, o.height, teardown);
    const proxy = new SpiceProxy(vm.spice);
    await proxy.listen();
    teardown.add("proxy", () => proxy.close());
    result.first.push(await measureFirst("qumra", codec, proxy, o.runs, vm.ticket, teardown, progress));
    const client = await watch("127.0.0.1", proxy.port, vm.ticket, teardown);
    const channel = proxy.displays().at(-1)!;
    await proxy.quiet(channel, 200); // the keyframe's tail is not part of the typing session
    result.sessions.push(await typingSession(vm, proxy, channel, codec, o, progress));
    result.sessions.push(await fullScreenSession(vm, proxy, channel, codec, o, progress));
    await client.close();
  });
}

export async function runSpiceBench(o: SpiceBenchOptions, progress: Progress): Promise<SpiceBenchResult> {
  const result: SpiceBenchResult = { first: [], sessions: [], ratios: [], verdicts: [], errors: [] };
  const qemuCodecs = o.vsQemu ? QEMU_CODECS : [];
  const qumraCodecs = o.qemuOnly ? [] : o.codecs;
  progress.start(qemuCodecs.length * (o.runs + 1) + qumraCodecs.length * (o.runs + 1 + o.keys + o.fullChanges), "spice");
  // The yardstick first: qemu's numbers stand even when the qumra half cannot run.
  for (const codec of qemuCodecs) {
    await qemuHalf(codec, o, result, progress).catch((err: Error) => result.errors.push({ server: "qemu", codec, message: err.message }));
  }
  for (const codec of qumraCodecs) {
    await qumraHalf(codec, o, result, progress).catch((err: Error) => result.errors.push({ server: "qumra", codec, message: err.message }));
  }
  progress.stop();
  judge(result);
  return result;
}

/** Ratios against the yardstick and the PASS/FAIL lines (targets, not assertions). */
function judge(result: SpiceBenchResult): void {
  const qemu = (codec: SpiceBenchCodec) => result.first.find((r) => r.server === "qemu" && r.codec === codec) ?? result.first.find((r) => r.server === "qemu" && r.codec === "auto_glz");
  for (const r of result.first.filter((f) => f.server === "qumra")) {
    const q = qemu(r.codec);
    if (!q) continue;
    const ratio = round(r.firstMs / q.firstMs, 2);
    result.ratios.push({ codec: r.codec, qemuCodec: q.codec, ratio });
    result.verdicts.push({
      target: `first complete screen, ${r.codec}: qumra ${r.width}x${r.height} within qemu's time for its own ${q.width}x${q.height} (${q.codec})`,
      pass: r.firstMs <= q.firstMs,
      detail: `${r.firstMs} ms vs ${q.firstMs} ms (${ratio}x)`,
    });
  }
  for (const s of result.sessions.filter((x) => x.scenario === "typing")) {
    result.verdicts.push({
      target: `typing, ${s.codec}: updates under ${TYPING_MAX_BYTES} B (mean DRAW_COPY) and ${TYPING_MAX_MS} ms on the pipeline (p50)`,
      pass: s.bytesPerUpdate < TYPING_MAX_BYTES && s.latencyMs.p50 < TYPING_MAX_MS,
      detail: `${s.bytesPerUpdate} B/update (max ${s.maxUpdateBytes}), ${s.latencyMs.p50} ms p50 (${s.latencyMs.p99} ms p99)`,
    });
  }
}
