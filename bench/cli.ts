// qumra bench api|vm|encode|display|spice|metrics|sdk|migrate|boot: each prints a table (or --json) with ratios against a yardstick
// measured in the same run. The qumra binary adds this noun to the CLI (bin/qumra.js); the agent's own
// code never imports bench/.
import type { Command } from "commander";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { runApiBench, runApiUnderDisplayBench } from "./api.js";
import { runVmBench, type VmBenchResult } from "./vm.js";
import { runVmSandboxBench, type VmSandboxBenchResult } from "./vm-sandbox.js";
import { withTeardown } from "./teardown.js";
import { barChartSvg } from "./chart.js";
import { BENCH_CODECS, runEncodeBench, STANDARD_IMAGES, type BenchCodec, type EncodeBenchRow } from "./encode.js";
import { DISPLAY_BENCH_CODECS, runDisplayPipelineBench, runDisplayVmBench, type DisplayBenchCodec, type PipelineRow, type VmDisplayRow } from "./display.js";
import { credentialsOf, describeError, targetOf, type GlobalOptions } from "../agent/src/cli/connection.js";
import { fanOut, toJson } from "../agent/src/cli/fan-out.js";
import { table } from "../agent/src/cli/format.js";
import { parseIntIn, parseSize as parseMemorySize } from "../agent/src/cli/parse.js";
import { progressBar } from "../agent/src/cli/progress.js";
import { round } from "./stats.js";
import { runMetricsBench, type MetricsBenchResult } from "./metrics.js";
import { runSdkBench } from "./sdk.js";
import { runMigrateBench, type MigrateBenchResult } from "./migrate.js";
import { DEFAULT_BOOT_CMDLINE, fixturesDir, runBootBench } from "./boot.js";
import { renderBootBench } from "./boot-report.js";
import { qemuBootMissing } from "./boot-qemu.js";
import { runSpiceBench, SPICE_BENCH_CODECS, type SpiceBenchCodec, type SpiceBenchResult } from "./spice.js";
import { clientMissing } from "./spice-client.js";
import { qemuMissing } from "./spice-qemu.js";
import os from "node:os";

/** "WxH" within [min, max] per side. */
function parseSize(text: string, min: number, max: number): { width: number; height: number } {
  const size = /^(\d+)x(\d+)$/.exec(text);
  if (!size) throw new Error(`--size ${text}: expected WIDTHxHEIGHT such as 1920x1080`);
  return { width: parseIntIn(size[1], "--size width", min, max), height: parseIntIn(size[2], "--size height", min, max) };
}

export function registerBench(program: Command, globals: () => GlobalOptions): Command {
  const bench = program.command("bench").description("benchmarks (tables with ratios against same-run yardsticks)");

  bench
    .command("api")
    .description("unary call latency p50/p99 and calls/s with many concurrent clients")
    .option("--clients <n>", "concurrent clients, each with its own connection", "16")
    .option("--calls <n>", "calls per method", "20000")
    .option("--under-display <n>", "against an agent of its own (--host is not used) while N viewers stream full-screen changes, vs that agent idle and vs encoding on its main thread")
    .option("--display-workers <n>", "with --under-display: the agent's encode workers", String(os.availableParallelism()))
    .option("--size <WxH>", "with --under-display: screen size", "1920x1080")
    .option("--fps <n>", "with --under-display: full-screen changes per second per display (and the viewers' max_fps)", "30")
    .action(async (o: { clients: string; calls: string; underDisplay?: string; displayWorkers: string; size: string; fps: string }) => {
      const options = globals();
      const clients = parseIntIn(o.clients, "--clients", 1, 1024);
      const calls = parseIntIn(o.calls, "--calls", 1, 10_000_000);
      if (o.underDisplay !== undefined) {
        const { width, height } = parseSize(o.size, 64, 4096);
        const rows = await runApiUnderDisplayBench({
          displays: parseIntIn(o.underDisplay, "--under-display", 1, 64),
          workers: parseIntIn(o.displayWorkers, "--display-workers", 0, 64),
          fps: parseIntIn(o.fps, "--fps", 1, 120),
          clients, calls, width, height,
        }, progressBar(!options.json));
        console.log(options.json ? toJson(rows) : table(["LOAD", "METHOD", "CALLS", "P50 ms", "P99 ms", "P99 vs IDLE", "CALLS/s", "DISPLAY UPDATES/s"],
          rows.map((r) => [r.load, r.method, r.calls, r.p50Ms, r.p99Ms, `${r.p99VsIdle}x`, r.callsPerSecond, r.displayUpdatesPerSecond])));
        return;
      }
      await fanOut(
        options,
        (host) => runApiBench({ target: targetOf(host), credentials: credentialsOf(options), clients, calls }, progressBar(!options.json && options.host.length === 1)),
        (rows) =>
          table(["METHOD", "CALLS", "CLIENTS", "P50 ms", "P99 ms", "CALLS/s", "P50 vs HEALTH"], rows.map((r) => [r.method, r.calls, r.clients, r.p50Ms, r.p99Ms, r.callsPerSecond, `${r.p50VsHealth}x`])),
      );
    });

  bench
    .command("sdk")
    .description("the client SDK (qumra/client) against raw grpc-js calls on the same agent, same run: GetHost, ListVms, GetVm latency and calls/s")
    .option("--calls <n>", "calls per method, side and round", "1000")
    .option("--concurrency <n>", "calls in flight for the calls/s figure", "16")
    .option("--rounds <n>", "alternating raw/SDK rounds (medians across rounds)", "3")
    .action(async (o: { calls: string; concurrency: string; rounds: string }) => {
      const options = globals();
      const calls = parseIntIn(o.calls, "--calls", 10, 10_000_000);
      const concurrency = parseIntIn(o.concurrency, "--concurrency", 1, 1024);
      const rounds = parseIntIn(o.rounds, "--rounds", 1, 100);
      const tls = options.tlsCa || options.tlsCert || options.tlsKey ? { ca: options.tlsCa, cert: options.tlsCert, key: options.tlsKey, serverName: options.tlsServerName } : undefined;
      await fanOut(
        options,
        (host) => runSdkBench({ target: targetOf(host), credentials: credentialsOf(options), connect: { address: host, tls }, calls, concurrency, rounds }, progressBar(!options.json && options.host.length === 1)),
        (rows) => table(["METHOD", "CALLS", "RAW P50 ms", "SDK P50 ms", "SDK/RAW P50", "SDK COST us", "RAW P99 ms", "SDK P99 ms", "RAW CALLS/s", "SDK CALLS/s", "SDK/RAW CALLS/s", "CLIENT CPU us/CALL RAW", "SDK", "SDK/RAW CPU"],
          rows.map((r) => [r.method, r.calls, r.rawP50Ms, r.sdkP50Ms, `${r.p50Ratio}x`, r.overheadUs, r.rawP99Ms, r.sdkP99Ms, r.rawCallsPerSecond, r.sdkCallsPerSecond, `${r.throughputRatio}x`, r.rawCpuUsPerCall, r.sdkCpuUsPerCall, `${r.cpuRatio}x`])),
      );
    });

  bench
    .command("encode")
    .description("WASM SPICE codecs: encode/decode MB/s and ratio per image, against native zlib-1 and LZ4 in the same run (local)")
    .option("--codec <list>", `comma-separated: ${BENCH_CODECS.join(",")}`, BENCH_CODECS.join(","))
    .option("--image <list>", `comma-separated: ${STANDARD_IMAGES.join(",")} or FILE.png`, STANDARD_IMAGES.join(","))
    .option("--size <WxH>", "size of the generated images", "1920x1080")
    .option("--runs <n>", "timed runs per codec and image (the median is reported)", "5")
    .option("--chart <file.svg>", "also write an SVG bar chart of encode MB/s")
    .action((o: { codec: string; image: string; size: string; runs: string; chart?: string }) => {
      const options = globals();
      const codecs = o.codec.split(",").map((c) => c.trim()).filter(Boolean);
      for (const c of codecs) {
        if (!(BENCH_CODECS as readonly string[]).includes(c)) throw new Error(`--codec ${c}: expected some of ${BENCH_CODECS.join(",")}`);
      }
      const images = o.image.split(",").map((i) => i.trim()).filter(Boolean);
      if (codecs.length === 0) throw new Error("--codec: no codec given");
      if (images.length === 0) throw new Error("--image: no image given");
      const { width, height } = parseSize(o.size, 1, 16384);
      const runs = parseIntIn(o.runs, "--runs", 1, 1000);
      const rows = runEncodeBench({ codecs: codecs as BenchCodec[], images, width, height, runs }, progressBar(!options.json));
      if (o.chart) writeFileSync(o.chart, encodeChart(rows));
      console.log(options.json ? toJson(rows) : encodeTable(rows));
    });

  bench
    .command("vm")
    .description("create→running latency through gRPC, and the helper's port-exit rate vs a bare KVM_RUN loop")
    .option("--vms <n>", "VMs to create for the latency figures", "10")
    .option("--exit-runs <n>", "runs of 100000 port exits (median)", "5")
    .option("--sandbox", "against two agents of its own (--host is not used): helpers with --vmm-sandbox on vs off, same run")
    .option("--rounds <n>", "with --sandbox: alternating on/off rounds (medians across rounds)", "3")
    .action(async (o: { vms: string; exitRuns: string; sandbox?: boolean; rounds: string }) => {
      const options = globals();
      const vms = parseIntIn(o.vms, "--vms", 1, 1000);
      const exitRuns = parseIntIn(o.exitRuns, "--exit-runs", 1, 100);
      if (o.sandbox) {
        const rounds = parseIntIn(o.rounds, "--rounds", 1, 100);
        const r = await withTeardown((teardown) => runVmSandboxBench({ vms, exitRuns, rounds }, progressBar(!options.json), teardown));
        console.log(options.json ? toJson(r) : renderVmSandboxBench(r));
        return;
      }
      await fanOut(
        options,
        (host) => runVmBench({ target: targetOf(host), credentials: credentialsOf(options), vms, exitRuns }, progressBar(!options.json && options.host.length === 1)),
        renderVmBench,
      );
    });

  bench
    .command("display")
    .description("display pipeline: (1) scripted desktop session on a tmpfs framebuffer through display/ and gRPC, per codec vs zlib-1; (2) a demo-guest VM at 1920x1080 through each --host: fps, bytes, latency")
    .option("--part <part>", "pipeline|vm|both", "both")
    .option("--codec <list>", `comma-separated: ${DISPLAY_BENCH_CODECS.join(",")}`, DISPLAY_BENCH_CODECS.join(","))
    .option("--size <WxH>", "screen size", "1920x1080")
    .option("--steps <n>", "pipeline: changes per scenario", "60")
    .option("--samples <n>", "vm: closed-loop changes per codec and kind (latency samples)", "30")
    .option("--fps-seconds <s>", "vm: seconds of back-to-back full-screen changes per codec", "3")
    .action(async (o: { part: string; codec: string; size: string; steps: string; samples: string; fpsSeconds: string }) => {
      const options = globals();
      if (!["pipeline", "vm", "both"].includes(o.part)) throw new Error(`--part ${o.part}: expected pipeline, vm or both`);
      const codecs = o.codec.split(",").map((c) => c.trim()).filter(Boolean);
      for (const c of codecs) if (!(DISPLAY_BENCH_CODECS as readonly string[]).includes(c)) throw new Error(`--codec ${c}: expected some of ${DISPLAY_BENCH_CODECS.join(",")}`);
      const { width, height } = parseSize(o.size, 64, 8192);
      const out: { pipeline?: PipelineRow[]; vm?: { host: string; ok: boolean; rows?: VmDisplayRow[]; error?: { code: string; message: string } }[] } = {};
      if (o.part !== "vm") {
        out.pipeline = await runDisplayPipelineBench({ width, height, codecs: codecs as DisplayBenchCodec[], steps: parseIntIn(o.steps, "--steps", 1, 100000) }, progressBar(!options.json));
        if (!options.json) console.log(`pipeline (no VM), ${width}x${height}, scripted session on tmpfs, gRPC on loopback\n${pipelineTable(out.pipeline)}\n`);
      }
      if (o.part !== "pipeline") {
        const samples = parseIntIn(o.samples, "--samples", 1, 10000);
        const fpsSeconds = parseIntIn(o.fpsSeconds, "--fps-seconds", 1, 600);
        out.vm = await Promise.all(options.host.map(async (host) => {
          try {
            const rows = await runDisplayVmBench({ target: targetOf(host), credentials: credentialsOf(options), codecs: codecs as DisplayBenchCodec[], width, height, samples, fpsSeconds }, progressBar(!options.json && options.host.length === 1));
            return { host, ok: true, rows };
          } catch (err) {
            process.exitCode = 1;
            return { host, ok: false, error: describeError(err) };
          }
        }));
        if (!options.json) {
          for (const r of out.vm) {
            console.log(`demo-guest VM ${width}x${height} on ${r.host}, through the agent and gRPC (max_fps 120)`);
            console.log(r.ok ? vmDisplayTable(r.rows!) : `error: ${r.error?.code}: ${r.error?.message}`);
          }
        }
      }
      if (options.json) console.log(toJson(out));
    });

  bench
    .command("spice")
    .description("SPICE display through spice-gtk: connect → first complete screen, a typing session and full-screen changes (bytes, updates/s, latency, counted by a proxy), vs Debian's qemu -spice in the same run (--vs-qemu); starts its own agent")
    .option("--size <WxH>", "the qumra demo VM's screen", "1920x1080")
    .option("--codec <list>", `comma-separated: ${SPICE_BENCH_CODECS.join(",")} (the agent's --spice-image-compression)`, SPICE_BENCH_CODECS.join(","))
    .option("--runs <n>", "connects per codec for the first-screen time (median; one more runs first as a warm-up)", "5")
    .option("--keys <n>", "characters typed in the typing session", "40")
    .option("--full-changes <n>", "full-screen changes in the full-screen session", "5")
    .option("--vs-qemu", "also measure qemu-system-x86_64 -spice (image-compression quic and auto_glz, its SeaBIOS screen) as the yardstick")
    .option("--qemu-only", "measure only the yardstick (implies --vs-qemu)")
    .action(async (o: { size: string; codec: string; runs: string; keys: string; fullChanges: string; vsQemu?: boolean; qemuOnly?: boolean }) => {
      const options = globals();
      const codecs = o.codec.split(",").map((c) => c.trim()).filter(Boolean);
      for (const c of codecs) if (!(SPICE_BENCH_CODECS as readonly string[]).includes(c)) throw new Error(`--codec ${c}: expected some of ${SPICE_BENCH_CODECS.join(",")}`);
      if (codecs.length === 0) throw new Error("--codec: no codec given");
      const { width, height } = parseSize(o.size, 64, 4096);
      const vsQemu = Boolean(o.vsQemu || o.qemuOnly);
      const missing = clientMissing() ?? (vsQemu ? qemuMissing() : undefined);
      if (missing) throw new Error(`bench spice needs spice-gtk's client library and, with --vs-qemu, qemu: ${missing}`);
      const result = await runSpiceBench({
        width, height, codecs: codecs as SpiceBenchCodec[], vsQemu, qemuOnly: o.qemuOnly,
        runs: parseIntIn(o.runs, "--runs", 1, 1000),
        keys: parseIntIn(o.keys, "--keys", 1, 10000),
        fullChanges: parseIntIn(o.fullChanges, "--full-changes", 1, 10000),
      }, progressBar(!options.json));
      if (result.errors.length) process.exitCode = 1;
      console.log(options.json ? toJson(result) : spiceTables(result));
    });

  bench
    .command("metrics")
    .description("one Prometheus scrape of /metrics with N paused demo VMs: ms per scrape (median, p95) vs the same scrape with no VMs, one ListVms and GetVmStats of every VM over gRPC; starts its own agent")
    .option("--vms <n>", "demo VMs (created, started, paused)", "50")
    .option("--scrapes <n>", "timed scrapes (and yardstick rounds)", "50")
    .action(async (o: { vms: string; scrapes: string }) => {
      const options = globals();
      const vms = parseIntIn(o.vms, "--vms", 1, 1000);
      const scrapes = parseIntIn(o.scrapes, "--scrapes", 1, 100_000);
      const r = await withTeardown((teardown) => runMetricsBench({ vms, scrapes }, progressBar(!options.json), teardown));
      console.log(options.json ? toJson(r) : renderMetricsBench(r));
    });

  bench
    .command("migrate")
    .description("live migration of a demo VM between two agents on this host: total time, downtime, bytes sent, per memory size and dirty rate; --vs-qemu: Debian's qemu migrating a firmware-only guest of the same size in the same run; starts its own agents")
    .option("--memory <sizes>", "guest memory sizes, e.g. 256M,1G", "256M,1G")
    .option("--dirty-rate <rates>", "what the guest writes per second while it moves: 0, 6.25M, 25M or 100M (a list)", "0,25M")
    .option("--max-downtime <ms>", "MigrateVm's max_downtime_ms", "300")
    .option("--vs-qemu", "also migrate qemu-system-x86_64 (firmware only, same memory size) between two qemu processes on loopback")
    .action(async (o: { memory: string; dirtyRate: string; maxDowntime: string; vsQemu?: boolean }) => {
      const options = globals();
      const memoryBytes = o.memory.split(",").map((s) => parseBytes(s.trim(), "--memory"));
      const dirtyBytesPerSecond = o.dirtyRate.split(",").map((s) => parseBytes(s.trim(), "--dirty-rate"));
      const maxDowntimeMs = parseIntIn(o.maxDowntime, "--max-downtime", 1, 60_000);
      if (o.vsQemu && qemuMissing()) throw new Error(`bench migrate --vs-qemu: ${qemuMissing()}`);
      const r = await withTeardown((teardown) => runMigrateBench({ memoryBytes, dirtyBytesPerSecond, maxDowntimeMs, vsQemu: Boolean(o.vsQemu) }, progressBar(!options.json), teardown));
      console.log(options.json ? toJson(r) : renderMigrateBench(r));
    });

  bench
    .command("boot")
    .description("create → each Linux boot milestone on the serial console (banner … init marker), a kernel (vmlinux or bzImage) booted by an agent of its own; --vs-qemu: Debian's qemu -M microvm booting the same kernel, initrd and command line afterwards in the same run")
    .option("--kernel <file>", "an ELF vmlinux (PVH entry) or a bzImage (default: the vmlinux of npm run fixtures)")
    .option("--initrd <file>", "an initramfs (default: the fixture's, which prints QUMRA-INIT-OK)")
    .option("--cmdline <text>", "the kernel command line", DEFAULT_BOOT_CMDLINE)
    .option("--memory <size>", "guest memory", "256M")
    .option("--vcpus <n>", "vCPUs", "1")
    .option("--timeout <seconds>", "per side: give up on the init marker after this long", "240")
    .option("--vs-qemu", "also boot the same kernel in qemu-system-x86_64 -M microvm -enable-kvm (after ours, not beside it)")
    .action(async (o: { kernel?: string; initrd?: string; cmdline: string; memory: string; vcpus: string; timeout: string; vsQemu?: boolean }, command: Command) => {
      const options = globals();
      // The CLI's global --timeout (each call's deadline) takes the flag wherever it is written; this
      // bench makes no calls to another agent, so a --timeout given is this one.
      const root = command.parent!.parent!;
      const timeoutText = root.getOptionValueSource("timeout") === "cli" ? String(root.opts<{ timeout: string }>().timeout) : o.timeout;
      const kernel = path.resolve(o.kernel ?? path.join(fixturesDir(), "vmlinux"));
      const initrd = o.initrd === "" ? undefined : path.resolve(o.initrd ?? path.join(fixturesDir(), "qumra-init.cpio"));
      for (const [flag, file, given] of [["--kernel", kernel, o.kernel], ["--initrd", initrd, o.initrd]] as const) {
        if (file !== undefined && !existsSync(file)) throw new Error(`${flag} ${file} does not exist${given === undefined ? " (its default comes from npm run fixtures)" : ""}`);
      }
      const memoryBytes = parseMemorySize(o.memory, "--memory");
      if (memoryBytes < 64 << 20 || memoryBytes % (1 << 20) !== 0) throw new Error(`--memory ${o.memory}: a whole number of MiB, at least 64M (a kernel and its initramfs need room)`);
      const vcpus = parseIntIn(o.vcpus, "--vcpus", 1, 64);
      const timeoutMs = parseIntIn(timeoutText, "--timeout", 1, 3600) * 1000;
      if (o.vsQemu && qemuBootMissing()) throw new Error(`bench boot --vs-qemu: ${qemuBootMissing()}`);
      const r = await withTeardown((teardown) => runBootBench({ kernel, initrd, cmdline: o.cmdline, memoryBytes, vcpus, timeoutMs, vsQemu: Boolean(o.vsQemu) }, progressBar(!options.json), teardown));
      console.log(options.json ? toJson({ ...r, qumra: { ...r.qumra, console: undefined }, qemu: r.qemu && { ...r.qemu, console: undefined } }) : renderBootBench(r));
    });

  return bench;
}

/** "256M", "1G", "6.25M", "0" → bytes (powers of 1024). */
function parseBytes(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)$/i.exec(text);
  if (!m) throw new Error(`${flag} ${text}: expected a size like 256M or 1G`);
  return Math.round(Number(m[1]) * 1024 ** " KMG".indexOf(m[2].toUpperCase() || " "));
}

function renderMigrateBench(r: MigrateBenchResult): string {
  const mib = (n: number) => `${round(n / (1 << 20), 1)}M`;
  const rows = r.rows.map((x) => [
    "qumra", mib(x.memoryBytes), `${mib(x.dirtyBytesPerSecond)}/s`, x.totalMs, x.downtimeMs, mib(x.bytesSent), round(x.bytesSent / x.memoryBytes, 3), x.rounds, `${mib(x.transferBytesPerSecond)}/s`,
    x.qemu ? `${round(x.totalMs / Math.max(1, x.qemu.totalMs), 2)}x / ${round(x.downtimeMs / Math.max(1, x.qemu.downtimeMs), 2)}x` : "-",
  ]);
  const qemu = r.qemu.map((q) => [`qemu (${q.accel}, firmware only)`, mib(q.memoryBytes), "idle", q.totalMs, q.downtimeMs, mib(q.transferredBytes), round(q.transferredBytes / q.memoryBytes, 3), "-", `${round(q.mbps / 8, 1)}MB/s`, "yardstick"]);
  const parts = r.rows.map((x) => `${mib(x.memoryBytes)} ${mib(x.dirtyBytesPerSecond)}/s: ${Object.entries(x.downtimePartsMs).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  return table(["SERVER", "MEMORY", "GUEST WRITES", "TOTAL ms", "DOWNTIME ms", "SENT", "SENT/MEMORY", "ROUNDS", "RATE", "vs QEMU total / downtime"], [...rows, ...qemu]) +
    "\nqumra: a demo VM between two agents' unix sockets (pages relayed agent to agent, RAM CRC-32 checked on both sides at the switch); qemu: query-migrate's own figures, an idle SeaBIOS guest (mostly zero pages)" +
    `\nqumra's downtime by step (ms):\n  ${parts.join("\n  ")}`;
}

function renderMetricsBench(r: MetricsBenchResult): string {
  return table(
    ["MEASURE", "MEDIAN ms", "P95 ms", "RUNS", "SCRAPE / THIS"],
    [
      [`GET /metrics, ${r.vms} paused VMs`, r.scrape.medianMs, r.scrape.p95Ms, r.scrape.runs, ""],
      ["GET /metrics, no VMs (same agent, before)", r.scrapeNoVms.medianMs, r.scrapeNoVms.p95Ms, r.scrapeNoVms.runs, `${r.ratio.vsNoVms}x`],
      [`ListVms (${r.vms} VMs)`, r.listVms.medianMs, r.listVms.p95Ms, r.listVms.runs, `${r.ratio.vsListVms}x`],
      [`GetVmStats of all ${r.vms} VMs at once (gRPC)`, r.getVmStatsAll.medianMs, r.getVmStatsAll.p95Ms, r.getVmStatsAll.runs, `${r.ratio.vsGetVmStatsAll}x`],
    ],
  ) + `\none scrape: ${r.series} series, ${r.bytes} bytes, ${r.collectMedianMs} ms of it reading VMs and host (median); VMs read (qumra_vm_stats_up 1): ${r.vmsRead} of ${r.vms}`;
}

function spiceTables(r: SpiceBenchResult): string {
  const out: string[] = [];
  if (r.first.length) {
    const runs = r.first[0].runs;
    out.push(`connect → first complete screen in spice-gtk (median of ${runs} after a warm-up; through the counting proxy)`);
    out.push(table(["SERVER", "CODEC", "SCREEN", "FIRST ms", "MAX ms", "ON THE WIRE ms", "DISPLAY BYTES", "IMAGES", "vs QEMU"],
      r.first.map((f) => {
        const ratio = f.server === "qumra" ? r.ratios.find((x) => x.codec === f.codec) : undefined;
        return [f.server, f.codec, `${f.width}x${f.height}`, f.firstMs, f.maxMs, f.wireMs, f.bytes, f.images.join(","), ratio ? `${ratio.ratio}x (${ratio.qemuCodec})` : f.server === "qemu" ? "yardstick" : "-"];
      })));
  }
  if (r.sessions.length) {
    out.push("", "one spice-gtk client connected; SendInput text (typing) or the guest's 'f' (full screen); bytes = server→client display channel; B/UPDATE = a DRAW_COPY message; latency = to the DRAW_COPY carrying the key (to 90% of the screen for 'f')");
    out.push(table(["CODEC", "SESSION", "CHANGES", "SECONDS", "UPDATES", "UPDATES/s", "BYTES", "B/s", "B/UPDATE (max)", "B/CHANGE", "LATENCY p50/p99 ms", "IMAGES"],
      r.sessions.map((s) => [s.codec, s.scenario, s.changes, s.seconds, s.updates, s.updatesPerSecond, s.bytes, s.bytesPerSecond, `${s.bytesPerUpdate} (${s.maxUpdateBytes})`, s.bytesPerChange, `${s.latencyMs.p50} / ${s.latencyMs.p99}`, s.images.join(",")])));
  }
  if (r.verdicts.length) out.push("", ...r.verdicts.map((v) => `${v.pass ? "PASS" : "FAIL"}  ${v.target}: ${v.detail}`));
  if (r.errors.length) out.push("", ...r.errors.map((e) => `error (${e.server}, ${e.codec}): ${e.message}`));
  return out.join("\n");
}

function pipelineTable(rows: PipelineRow[]): string {
  const num = (v: number) => (Number.isNaN(v) ? "-" : v);
  return table(
    ["SCENARIO", "CODEC", "UPDATES", "BYTES/UPDATE", "RATIO", "UPDATES/s (agent)", "MB/s (agent)", "DECODE ms", "UPDATES/s (stream)", "OK"],
    rows.map((r) => [r.scenario, r.codec, r.updates, r.bytesPerUpdate, r.ratio, r.updatesPerSecond, r.encodeMBps, num(r.decodeMsPerUpdate), num(r.streamUpdatesPerSecond), r.verified ? "yes" : "NO"]),
  );
}

function vmDisplayTable(rows: VmDisplayRow[]): string {
  const x = (a: number, b: number) => (b ? `${round(a / b, 3)}x` : "-");
  return table(
    ["CODEC", "FULL fps (guest)", "FULL B/frame", "vs RAW", "vs ZLIB", "FULL lat p50/p99 ms", "TYPING B/update", "vs RAW", "vs ZLIB", "TYPING lat p50/p99 ms"],
    rows.map((r) => [r.codec, `${r.fullFps} (${r.guestFullPerSecond})`, r.fullBytesPerFrame, x(r.fullBytesPerFrame, r.fullRawBytesPerFrame), x(r.fullBytesPerFrame, r.fullZlibBytesPerFrame),
      `${r.fullLatencyMs.p50} / ${r.fullLatencyMs.p99}`, r.typingBytesPerUpdate, x(r.typingBytesPerUpdate, r.typingRawBytesPerUpdate), x(r.typingBytesPerUpdate, r.typingZlibBytesPerUpdate),
      `${r.typingLatencyMs.p50} / ${r.typingLatencyMs.p99}`]),
  ) + `\nraw = the same rects uncompressed (${rows[0]?.fullRawBytesPerFrame ?? 0} B per full frame); zlib = deflateRaw level 1 of the same rects' pixels`;
}

function renderVmSandboxBench(r: VmSandboxBenchResult): string {
  return table(
    ["MEASURE", "SANDBOX ON", "SANDBOX OFF", "ON/OFF"],
    [
      [`create→running (gRPC) p50, ${r.on.createToRunningMs.runs} + ${r.off.createToRunningMs.runs} VMs`, `${r.on.createToRunningMs.p50} ms`, `${r.off.createToRunningMs.p50} ms`, `${r.ratio.createToRunningP50}x`],
      ["create→running (gRPC) p99", `${r.on.createToRunningMs.p99} ms`, `${r.off.createToRunningMs.p99} ms`, `${r.ratio.createToRunningP99}x`],
      [`port exits/s through qumra-vmm (median of ${r.on.exitsPerSecond.runs} + ${r.off.exitsPerSecond.runs} runs)`, r.on.exitsPerSecond.helper, r.off.exitsPerSecond.helper, `${r.ratio.exitsPerSecond}x`],
      ["  vs bare KVM_RUN loop (same rounds)", `${r.on.exitsPerSecond.ratio}x of ${r.on.exitsPerSecond.bare}`, `${r.off.exitsPerSecond.ratio}x of ${r.off.exitsPerSecond.bare}`, ""],
      ["helper RSS per VM (32 MiB guest)", `${(r.on.helperRssBytes / 1048576).toFixed(1)} MiB`, `${(r.off.helperRssBytes / 1048576).toFixed(1)} MiB`, ""],
    ],
  );
}

function renderVmBench(r: VmBenchResult): string {
  return table(
    ["MEASURE", "VALUE", "YARDSTICK", "RATIO"],
    [
      [`create→running (gRPC), p50/p99 of ${r.createToRunningMs.runs}`, `${r.createToRunningMs.p50} / ${r.createToRunningMs.p99} ms`, "", ""],
      ["create→first serial output, p50/p99", `${r.createToFirstOutputMs.p50} / ${r.createToFirstOutputMs.p99} ms`, "", ""],
      [`port exits/s through qumra-vmm (median of ${r.exitsPerSecond.runs})`, r.exitsPerSecond.helper, `${r.exitsPerSecond.bare} (bare KVM_RUN loop)`, `${r.exitsPerSecond.ratio}x`],
      ["helper RSS per VM (32 MiB guest)", `${(r.helperRssBytes / 1048576).toFixed(1)} MiB`, "", ""],
    ],
  );
}

function encodeTable(rows: EncodeBenchRow[]): string {
  return table(
    ["IMAGE", "CODEC", "ENC MB/s", "DEC MB/s", "BYTES", "RATIO", "ENC vs ZLIB", "DEC vs ZLIB", "ENC vs LZ4", "DEC vs LZ4", "ENC TIME vs LZ", "OK"],
    rows.map((r) => [r.image, r.label, r.encodeMBps, r.decodeMBps, r.outputBytes, `${r.ratio}:1`, `${r.encodeVsZlib}x`, `${r.decodeVsZlib}x`,
      `${r.encodeVsLz4}x`, `${r.decodeVsLz4}x`, r.encodeTimeVsLz === undefined ? "" : `${r.encodeTimeVsLz}x`, r.verified ? "yes" : "NO"]),
  );
}

function encodeChart(rows: EncodeBenchRow[]): string {
  const key = (r: EncodeBenchRow): string => (r.variant ? `glz ${r.variant}` : r.codec);
  const series = [...new Set(rows.map(key))];
  const categories = [...new Set(rows.map((r) => r.image))];
  const values = series.map((s) => categories.map((c) => rows.find((r) => key(r) === s && r.image === c)?.encodeMBps));
  return barChartSvg({ title: "qumra bench encode: encode MB/s (raw 32-bpp input, median)", unit: "MB/s", categories, series, values });
}
