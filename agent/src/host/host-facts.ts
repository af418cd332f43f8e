// Facts and live samples about this host, from systeminformation, /proc, /sys and the KVM probe.
import os from "node:os";
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import path from "node:path";
import si from "systeminformation";
import { probeKvm, type KvmFacts } from "./kvm-probe.js";

export interface HostFacts {
  hostname: string;
  kernelRelease: string;
  os: string;
  arch: string;
  cpu: { model: string; vendor: string; cores: number; threads: number; mhz: number; flags: string[] };
  memory: { totalBytes: bigint; availableBytes: bigint };
  numaNodes: { id: number; cpus: number[]; memoryBytes: bigint }[];
  kvm: KvmFacts;
}

export interface HostSample {
  time: Date;
  cpuPercent: number;
  perCpuPercent: number[];
  memoryTotalBytes: bigint;
  memoryAvailableBytes: bigint;
  load: [number, number, number];
}

export class HostInfo {
  private staticFacts?: Promise<Omit<HostFacts, "memory" | "kvm">>;
  private kvmLimits?: Promise<KvmFacts>;

  constructor(private readonly vmmPath: string) {}

  async facts(): Promise<HostFacts> {
    this.staticFacts ??= this.readStaticFacts();
    const [base, memory, kvm] = await Promise.all([this.staticFacts, readMemory(), probeKvm(this.vmmPath)]);
    return { ...base, memory, kvm };
  }

  /** What a new VM may use: KVM's vCPU limit (probed once) and the memory available now. */
  async limits(): Promise<{ maxVcpus: number; availableMemory: number; cpuFeatures: number[]; demoImageBytes?: number } | { unavailable: string }> {
    this.kvmLimits ??= probeKvm(this.vmmPath);
    const [kvm, memory] = await Promise.all([this.kvmLimits, readMemory()]);
    if (!kvm.available) {
      this.kvmLimits = undefined;
      return { unavailable: kvm.error };
    }
    // The helper runs the demo guest from beside its own binary (symlinks resolved, as /proc/self/exe is).
    const vmm = await realpath(this.vmmPath).catch(() => this.vmmPath);
    const demo = await stat(path.join(path.dirname(vmm), "demo-guest.bin")).catch(() => undefined);
    return { maxVcpus: kvm.maxVcpus, availableMemory: Number(memory.availableBytes), cpuFeatures: kvm.cpuFeatures, ...(demo?.isFile() ? { demoImageBytes: demo.size } : {}) };
  }

  /** A sample of CPU use since the previous call (the first call measures since boot), memory and load. */
  async sample(): Promise<HostSample> {
    const [load, memory] = await Promise.all([si.currentLoad(), readMemory()]);
    const [l1, l5, l15] = os.loadavg();
    return {
      time: new Date(),
      cpuPercent: load.currentLoad,
      perCpuPercent: load.cpus.map((c) => c.load),
      memoryTotalBytes: memory.totalBytes,
      memoryAvailableBytes: memory.availableBytes,
      load: [l1, l5, l15],
    };
  }

  private async readStaticFacts(): Promise<Omit<HostFacts, "memory" | "kvm">> {
    const [osInfo, cpu, flags, numaNodes] = await Promise.all([si.osInfo(), si.cpu(), si.cpuFlags(), readNuma()]);
    return {
      hostname: os.hostname(),
      kernelRelease: os.release(),
      os: osInfo.distro && osInfo.release ? `${osInfo.distro} ${osInfo.release}${osInfo.codename ? ` (${osInfo.codename})` : ""}` : osInfo.platform,
      arch: os.arch(),
      cpu: {
        model: `${cpu.manufacturer} ${cpu.brand}`.trim(),
        vendor: cpu.vendor,
        cores: cpu.physicalCores,
        threads: cpu.cores,
        mhz: Math.round(cpu.speed * 1000),
        flags: flags.split(/\s+/).filter(Boolean),
      },
      numaNodes,
    };
  }
}

/** MemTotal and MemAvailable from /proc/meminfo (what `free` reports). */
async function readMemory(): Promise<{ totalBytes: bigint; availableBytes: bigint }> {
  const text = await readFile("/proc/meminfo", "utf8");
  const kib = (key: string) => BigInt(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? "0") * 1024n;
  return { totalBytes: kib("MemTotal"), availableBytes: kib("MemAvailable") };
}

/** NUMA nodes from sysfs; a machine without them is one node holding every CPU. */
async function readNuma(): Promise<HostFacts["numaNodes"]> {
  const base = "/sys/devices/system/node";
  const names = await readdir(base).catch(() => [] as string[]);
  const nodes: HostFacts["numaNodes"] = [];
  for (const name of names.filter((n) => /^node\d+$/.test(n)).sort()) {
    const cpulist = await readFile(`${base}/${name}/cpulist`, "utf8").catch(() => "");
    const meminfo = await readFile(`${base}/${name}/meminfo`, "utf8").catch(() => "");
    const kib = /MemTotal:\s+(\d+) kB/.exec(meminfo)?.[1];
    nodes.push({ id: Number(name.slice(4)), cpus: parseCpuList(cpulist), memoryBytes: kib ? BigInt(kib) * 1024n : 0n });
  }
  if (nodes.length === 0) {
    nodes.push({ id: 0, cpus: os.cpus().map((_, i) => i), memoryBytes: BigInt(os.totalmem()) });
  }
  return nodes;
}

/** "0-3,8,10-11" → [0,1,2,3,8,10,11]. */
export function parseCpuList(text: string): number[] {
  const cpus: number[] = [];
  for (const part of text.trim().split(",").filter(Boolean)) {
    const [from, to] = part.split("-").map(Number);
    for (let cpu = from; cpu <= (to ?? from); cpu++) cpus.push(cpu);
  }
  return cpus;
}
