// qumra host info | stats
import type { Command } from "commander";
import { HostServiceClient, type Host, type HostStats } from "../gen/qumra/v1/host.js";
import { callUnary, clientFor, deadline, describeError, type GlobalOptions } from "./connection.js";
import { fanOut, toJson } from "./fan-out.js";
import { bytes, fields } from "./format.js";

export function registerHost(program: Command, globals: () => GlobalOptions): void {
  const host = program.command("host").description("facts and live statistics of the hosts");

  host
    .command("info")
    .description("hostname, CPU, memory, NUMA and KVM facts")
    .action(async () => {
      const options = globals();
      await fanOut(
        options,
        (h) => {
          const client = clientFor(HostServiceClient, h, options);
          return callUnary(client.getHost.bind(client), {}, options).finally(() => client.close());
        },
        renderHost,
      );
    });

  host
    .command("stats")
    .description("CPU, memory and load samples as they come")
    .option("--count <n>", "samples to take (0 = until interrupted)", "5")
    .option("--interval <ms>", "milliseconds between samples (100..3600000)", "1000")
    .action(async (opts: { count: string; interval: string }) => {
      const options = globals();
      const multi = options.host.length > 1;
      await fanOut(
        options,
        async (h) => {
          await watchStats(h, options, Number(opts.count), Number(opts.interval), (s) => {
            console.log(options.json ? toJson(multi ? { host: h, ...s } : s, 0) : `${multi ? `${h}  ` : ""}${renderSample(s)}`);
          });
        },
        () => "",
      );
    });
}

function watchStats(host: string, options: GlobalOptions, count: number, intervalMs: number, onSample: (s: HostStats) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const client = clientFor(HostServiceClient, host, options);
    // A stream's deadline covers every sample, so it grows with the count.
    const streamDeadline = count > 0 ? new Date(deadline(options).getTime() + count * intervalMs) : undefined;
    const stream = client.watchHostStats({ intervalMs, count }, { deadline: streamDeadline });
    let received = 0;
    stream.on("data", (s: HostStats) => {
      received++;
      onSample(s);
    });
    stream.on("error", (err) => {
      client.close();
      reject(Object.assign(err, { message: describeError(err).message }));
    });
    stream.on("end", () => {
      client.close();
      resolve(received);
    });
  });
}

function renderHost(h: Host): string {
  const kvm = h.kvm;
  const kvmText = kvm?.available
    ? `API ${kvm.apiVersion}, ${kvm.module || "module unknown"}, max ${kvm.maxVcpus} vCPUs (recommended ${kvm.recommendedVcpus}), ${kvm.capabilities.filter((c) => c.value !== 0n).length} of ${kvm.capabilities.length} capabilities`
    : `unavailable: ${kvm?.error}`;
  return fields([
    ["hostname", h.hostname],
    ["os", `${h.os} (kernel ${h.kernelRelease}, ${h.arch})`],
    ["cpu", `${h.cpu?.model} — ${h.cpu?.cores} cores, ${h.cpu?.threads} threads${h.cpu?.mhz ? `, ${h.cpu.mhz} MHz` : ""}`],
    ["memory", `${bytes(h.memory?.totalBytes ?? 0n)} total, ${bytes(h.memory?.availableBytes ?? 0n)} available`],
    ["numa", h.numaNodes.map((n) => `node${n.id}: cpus ${n.cpus.join(",")}`).join("; ")],
    ["kvm", kvmText],
    ["admission", admissionText(h)],
    ["cgroups", h.cgroups ? (h.cgroups.enabled ? `${h.cgroups.path} (${h.cgroups.controllers.join(", ") || "no controllers"})${h.cgroups.reason ? `; ${h.cgroups.reason}` : ""}` : `off: ${h.cgroups.reason}`) : "not reported"],
    ["agent", `qumra ${h.agent?.version} on node ${h.agent?.nodeVersion}, listening on ${h.agent?.listen.join(", ")}${h.agent?.instanceId ? `, instance ${h.agent.instanceId}` : ""}`],
    ...(h.agent?.degraded ? [["degraded", `${h.agent.degraded}: reads only, mutations refused`] as [string, string]] : []),
    ...(h.agent?.quarantined ?? []).map((q): [string, string] => ["quarantined", `${q.name}: ${q.problem}${q.quarantinedAs ? ` (moved to ${q.quarantinedAs})` : " (left in place)"}${q.helperPids.length ? `; helper pid ${q.helperPids.join(", ")} still runs: qumra vm delete --force ${q.name} kills it` : ""}`]),
  ]);
}

function admissionText(h: Host): string {
  const a = h.admission;
  if (!a) return "not reported";
  return `${bytes(a.memoryAdmittedBytes)} of ${bytes(a.memoryCapacityBytes)} admitted (overcommit ${a.memoryOvercommit}, reserve ${bytes(a.memoryReserveBytes)}), ${a.vmsDefined} of ${a.maxVms} VMs`;
}

function renderSample(s: HostStats): string {
  return `${s.time?.toISOString()}  cpu ${s.cpuPercent.toFixed(1)}%  mem ${bytes(s.memoryAvailableBytes)} free of ${bytes(s.memoryTotalBytes)}  load ${s.load1.toFixed(2)} ${s.load5.toFixed(2)} ${s.load15.toFixed(2)}  vms ${s.vmsRunning}/${s.vmsTotal}`;
}
