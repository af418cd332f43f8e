// qumra bench metrics: what one Prometheus scrape of /metrics costs with N VMs (default 50), against
// yardsticks measured in the same run on the same agent: the same scrape with no VMs, one ListVms RPC,
// and GetVmStats of every VM at once over gRPC (what reading the same facts through the API costs).
// The benchmark starts an agent of its own (--metrics on loopback); its demo VMs are created, started
// and paused, so their helpers answer STATS while the emulated guests leave the host's cores alone.
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { VmServiceClient, VmState } from "../agent/src/gen/qumra/v1/vm.js";
import { packageRoot } from "../agent/src/paths.js";
import type { Teardown } from "./teardown.js";
import { median, percentile, round, type Progress } from "./stats.js";

export interface MetricsBenchOptions {
  vms: number;
  /** Timed scrapes per measure (after a few warm-up ones). */
  scrapes: number;
}

export interface Timing {
  medianMs: number;
  p95Ms: number;
  runs: number;
}

export interface MetricsBenchResult {
  vms: number;
  scrape: Timing;
  /** Yardsticks. */
  scrapeNoVms: Timing;
  listVms: Timing;
  getVmStatsAll: Timing;
  /** scrape median / yardstick median. */
  ratio: { vsNoVms: number; vsListVms: number; vsGetVmStatsAll: number };
  /** What one scrape with the VMs carried. */
  series: number;
  bytes: number;
  /** VMs whose statistics the last scrape read (qumra_vm_stats_up 1), of `vms`. */
  vmsRead: number;
  /** Median of the agent's own qumra_metrics_collect_seconds (reading VMs and host, before the text is made), ms. */
  collectMedianMs: number;
}

const WARMUP = 3;
const CREATE_CONCURRENCY = 4;

function unary<Req, Res>(fn: (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, new grpc.Metadata(), { deadline: Date.now() + 60_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Starts the benchmark's agent; resolves with its gRPC and metrics addresses. */
async function startAgent(teardown: Teardown): Promise<{ grpc: string; metrics: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "qumra-bench-metrics-"));
  teardown.add("agent dirs", () => rmSync(dir, { recursive: true, force: true }));
  const argv = [path.join(packageRoot, "bin", "qumra-agent.js"), "--listen", "127.0.0.1:0", "--unix", "none", "--metrics", "127.0.0.1:0", "--state-dir", path.join(dir, "state"), "--runtime-dir", path.join(dir, "run"), "--display-workers", "1", "--cgroups", "off"];
  // Own process group: a Ctrl-C must not stop the agent before teardown deleted its VMs through it.
  const child = teardown.child("qumra-agent", spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"], detached: true }));
  let output = "";
  let listening = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`qumra-agent did not start within 20 s:\n${output}`)), 20_000);
    // Read to the end: an agent whose stdout pipe fills (a log line per RPC) would block on it.
    const onData = (d: Buffer) => {
      if (listening) return;
      output += d.toString();
      const line = output.split("\n").find((l) => l.includes('"qumra-agent listening"'));
      if (!line) return;
      listening = true;
      clearTimeout(timer);
      const parsed = JSON.parse(line) as { listen: string[]; metrics: string };
      resolve({ grpc: parsed.listen.find((a) => !a.startsWith("unix:"))!, metrics: parsed.metrics });
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`qumra-agent exited with ${code} before listening: ${output.trim().split("\n").at(-1)}`));
    });
  });
}

/** One GET /metrics over a kept-alive connection, as Prometheus scrapes; resolves with the body. */
function get(agent: http.Agent, address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(`http://${address}/metrics`, { agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET /metrics: ${res.statusCode} ${body}`))));
    }).on("error", reject);
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

function timing(ms: number[]): Timing {
  return { medianMs: round(median(ms), 3), p95Ms: round(percentile(ms, 95), 3), runs: ms.length };
}

export async function runMetricsBench(options: MetricsBenchOptions, progress: Progress, teardown: Teardown): Promise<MetricsBenchResult> {
  const agent = await startAgent(teardown);
  const client = new VmServiceClient(agent.grpc, grpc.credentials.createInsecure());
  teardown.add("gRPC client", () => client.close());
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
  teardown.add("HTTP agent", () => keepAlive.destroy());
  const scrape = () => get(keepAlive, agent.metrics);
  const created: string[] = [];
  teardown.add("VMs", () => Promise.all(created.map((vmId) => unary(client.deleteVm.bind(client), { vmId, force: true }).catch(() => undefined))));

  progress.start(options.scrapes + options.vms + options.scrapes, "metrics");
  // Yardstick 1: the scrape of the same agent with no VMs.
  for (let i = 0; i < WARMUP; i++) await scrape();
  const noVms: number[] = [];
  for (let i = 0; i < options.scrapes; i++) {
    noVms.push(await timed(scrape));
    progress.increment();
  }

  const prefix = `bm-${randomUUID().slice(0, 6)}`;
  const ids = Array.from({ length: options.vms }, (_, i) => `${prefix}-${i}`);
  const queue = [...ids];
  await Promise.all(Array.from({ length: CREATE_CONCURRENCY }, async () => {
    for (let vmId = queue.shift(); vmId; vmId = queue.shift()) {
      const spec = { name: vmId, vcpus: 1, memoryBytes: 16n << 20n, boot: { $case: "demo" as const, value: {} }, display: { width: 320, height: 240 }, labels: {}, imageCompression: 0, cpuWeight: 0 };
      await unary(client.createVm.bind(client), { vmId, requestId: randomUUID(), spec });
      created.push(vmId);
      await unary(client.startVm.bind(client), { vmId });
      await unary(client.pauseVm.bind(client), { vmId });
      progress.increment();
    }
  }));
  const { vms: listed } = await unary(client.listVms.bind(client), { state: VmState.VM_STATE_PAUSED, labelSelector: {} });
  if (listed.length < options.vms) throw new Error(`only ${listed.length} of ${options.vms} VMs are paused`);

  // The scrape and its gRPC yardsticks, interleaved round by round so a busier moment of the host favours none.
  for (let i = 0; i < WARMUP; i++) await scrape();
  const scrapes: number[] = [];
  const lists: number[] = [];
  const statsAll: number[] = [];
  const collects: number[] = [];
  let body = "";
  for (let i = 0; i < options.scrapes; i++) {
    const started = performance.now();
    body = await scrape();
    scrapes.push(performance.now() - started);
    const collect = /^qumra_metrics_collect_seconds (\S+)$/m.exec(body);
    if (collect) collects.push(Number(collect[1]) * 1000);
    lists.push(await timed(() => unary(client.listVms.bind(client), { state: 0, labelSelector: {} })));
    statsAll.push(await timed(() => Promise.all(ids.map((vmId) => unary(client.getVmStats.bind(client), { vmId })))));
    progress.increment();
  }
  progress.stop();

  const lines = body.split("\n").filter((l) => l && !l.startsWith("#"));
  const vmsRead = lines.filter((l) => l.startsWith("qumra_vm_stats_up{") && l.endsWith(" 1") && l.includes(`vm_id="${prefix}-`)).length;
  const scrape_ = timing(scrapes);
  const noVms_ = timing(noVms);
  const list_ = timing(lists);
  const stats_ = timing(statsAll);
  return {
    vms: options.vms,
    scrape: scrape_,
    scrapeNoVms: noVms_,
    listVms: list_,
    getVmStatsAll: stats_,
    ratio: {
      vsNoVms: round(scrape_.medianMs / noVms_.medianMs, 2),
      vsListVms: round(scrape_.medianMs / list_.medianMs, 2),
      vsGetVmStatsAll: round(scrape_.medianMs / stats_.medianMs, 2),
    },
    series: lines.length,
    bytes: Buffer.byteLength(body),
    vmsRead,
    collectMedianMs: round(median(collects), 3),
  };
}
