// qumra bench api|vm|encode|display: each prints a table (or --json) with ratios against a yardstick
// measured in the same run.
import type { Command } from "commander";
import { runApiBench } from "../../../bench/api.js";
import { credentialsOf, targetOf, type GlobalOptions } from "./connection.js";
import { fanOut, toJson } from "./fan-out.js";
import { table } from "./format.js";
import { parseIntIn } from "./parse.js";
import { progressBar } from "./progress.js";

export function registerBench(program: Command, globals: () => GlobalOptions): Command {
  const bench = program.command("bench").description("benchmarks (tables with ratios against same-run yardsticks)");

  bench
    .command("api")
    .description("unary call latency p50/p99 and calls/s with many concurrent clients")
    .option("--clients <n>", "concurrent clients, each with its own connection", "16")
    .option("--calls <n>", "calls per method", "20000")
    .action(async (o: { clients: string; calls: string }) => {
      const options = globals();
      const clients = parseIntIn(o.clients, "--clients", 1, 1024);
      const calls = parseIntIn(o.calls, "--calls", 1, 10_000_000);
      await fanOut(
        options,
        (host) => runApiBench({ target: targetOf(host), credentials: credentialsOf(options), clients, calls }, progressBar(!options.json && options.host.length === 1)),
        (rows) =>
          options.json
            ? toJson(rows)
            : table(["METHOD", "CALLS", "CLIENTS", "P50 ms", "P99 ms", "CALLS/s", "P50 vs HEALTH"], rows.map((r) => [r.method, r.calls, r.clients, r.p50Ms, r.p99Ms, r.callsPerSecond, `${r.p50VsHealth}x`])),
      );
    });

  return bench;
}
