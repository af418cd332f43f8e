// qumra vm migrate|migrate-cancel: live migration of a VM to another agent.
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { MigrationPhase, VmServiceClient, type MigrationProgress, type MigrationTls } from "../gen/qumra/v1/vm.js";
import { callUnary, type GlobalOptions } from "./connection.js";
import { withClients } from "./fan-out.js";
import { bytes, fields } from "./format.js";
import { parseIntIn, parseSize } from "./parse.js";
import { followProgress } from "./progress.js";

type Globals = () => GlobalOptions;

interface MigrateOptions {
  to: string;
  toTlsCa?: string;
  toTlsCert?: string;
  toTlsKey?: string;
  toTlsServerName?: string;
  maxDowntime: string;
  bandwidth?: string;
  maxRounds?: string;
}

/** The caller's credentials at the destination: the --to-tls-* files, else the CLI's own --tls-* ones. */
function destinationTls(o: MigrateOptions, g: GlobalOptions): MigrationTls | undefined {
  if (o.to.startsWith("unix:")) return undefined;
  const ca = o.toTlsCa ?? g.tlsCa;
  const cert = o.toTlsCert ?? g.tlsCert;
  const key = o.toTlsKey ?? g.tlsKey;
  if (!ca && !cert && !key) return undefined;
  const read = (f?: string) => (f ? readFileSync(f) : Buffer.alloc(0));
  return { caPem: read(ca), certPem: read(cert), keyPem: read(key), serverName: o.toTlsServerName ?? "" };
}

export function migrationView(p: MigrationProgress) {
  return {
    destination: p.destination,
    phase: MigrationPhase[p.phase]?.replace("MIGRATION_PHASE_", "") ?? String(p.phase),
    rounds: p.round,
    bytesSent: Number(p.bytesSent),
    memoryBytes: Number(p.memoryBytes),
    downtimeMs: p.downtimeMs,
    totalMs: p.totalMs,
    transferBytesPerSecond: Number(p.transferBytesPerSecond),
    dirtyBytesPerSecond: Number(p.dirtyBytesPerSecond),
    ramCrc32: `0x${p.ramCrc32.toString(16).padStart(8, "0")}`,
    display: p.destinationDisplay ? { host: p.destinationDisplay.host, port: p.destinationDisplay.port, tlsPort: p.destinationDisplay.tlsPort } : undefined,
  };
}

function render(vmId: string, p: MigrationProgress): string {
  const v = migrationView(p);
  return fields([
    ["migrated", `${vmId} to ${v.destination}`],
    ["downtime", `${v.downtimeMs} ms`],
    ["total", `${v.totalMs} ms, ${v.rounds} pre-copy round${v.rounds === 1 ? "" : "s"}`],
    ["sent", `${bytes(v.bytesSent)} for ${bytes(v.memoryBytes)} of RAM, at ${bytes(v.transferBytesPerSecond)}/s`],
    ["guest RAM crc32", v.ramCrc32],
    ...(v.display ? [["display there", `${v.display.host}:${v.display.port || "-"} (TLS ${v.display.tlsPort || "-"})`] as [string, string]] : []),
  ]);
}

/** Reads MigrateVm's stream to its COMPLETED message, moving a bar over the bytes sent (RAM size as 100%). */
function follow(stream: grpc.ClientReadableStream<MigrationProgress>, label: string, options: GlobalOptions): Promise<MigrationProgress> {
  return followProgress(
    stream,
    label,
    !options.json,
    (p) => ({ done: Math.min(Number(p.memoryBytes), Number(p.bytesSent)), total: Number(p.memoryBytes) }),
    (p) => p.phase === MigrationPhase.MIGRATION_PHASE_COMPLETED,
    "the agent ended the migration stream before it completed",
  );
}

export function registerMigrate(vm: Command, globals: Globals): void {
  vm.command("migrate <vm-id>")
    .description("move a RUNNING or PAUSED VM to another agent while it runs (live migration); Ctrl-C before the switch cancels it")
    .requiredOption("--to <agent>", "the destination agent: HOST:PORT or unix:/PATH (its socket on this machine)")
    .option("--to-tls-ca <file>", "CA of the destination's certificate (default: --tls-ca)")
    .option("--to-tls-cert <file>", "your client certificate at the destination (default: --tls-cert)")
    .option("--to-tls-key <file>", "its key (default: --tls-key)")
    .option("--to-tls-server-name <name>", "the name to check the destination's certificate against")
    .option("--max-downtime <ms>", "the longest pause you accept", "300")
    .option("--bandwidth <bytes/s>", "cap on the copy rate, e.g. 100M (default: none)")
    .option("--max-rounds <n>", "pre-copy rounds at most before the VM is paused (default 30)")
    .action(async (vmId: string, o: MigrateOptions) => {
      const options = globals();
      if (options.host.length > 1) throw new Error("migrate works on one source host at a time");
      const request = {
        vmId,
        destination: o.to,
        tls: destinationTls(o, options),
        maxDowntimeMs: parseIntIn(o.maxDowntime, "--max-downtime", 0, 60_000),
        maxBandwidthBytesPerSecond: BigInt(o.bandwidth ? parseSize(o.bandwidth, "--bandwidth") : 0),
        maxRounds: o.maxRounds ? parseIntIn(o.maxRounds, "--max-rounds", 0, 1000) : 0,
      };
      await withClients(options, VmServiceClient, async (c) => {
        // No deadline: a large VM takes as long as it takes; Ctrl-C cancels the call, which cancels it.
        const stream = c.migrateVm(request);
        const cancel = () => stream.cancel();
        process.once("SIGINT", cancel);
        try {
          return await follow(stream, `migrate ${vmId}`, options);
        } finally {
          process.off("SIGINT", cancel);
        }
      }, { text: (p) => render(vmId, p), json: migrationView });
    });

  vm.command("migrate-cancel <vm-id>")
    .description("cancel a VM's migration that has not reached its switch (the VM stays here)")
    .action(async (vmId: string) => {
      const options = globals();
      await withClients(options, VmServiceClient, async (c) => {
        await callUnary(c.cancelMigration.bind(c), { vmId }, options);
        return { vmId, cancelled: true };
      }, (r) => `cancelled the migration of ${r.vmId}`);
    });
}
