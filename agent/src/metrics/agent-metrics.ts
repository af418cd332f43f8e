// The agent's metrics, put together: the registry, the RPC counters the interceptor feeds, and the
// families read at scrape time (VMs, their KVM statistics and displays, the host). A scrape reads every
// VM at once within a bounded wait each (vm-readings.ts); scrapes that arrive while one is collecting
// share its result, so many scrapers cost what one does.
import { Gauge, type Registry } from "prom-client";
import type { DisplayTotals } from "../display/display-totals.js";
import { createRegistry } from "./registry.js";
import { RpcMetrics } from "./rpc-metrics.js";
import { readVms, VM_READ_BUDGET_MS, type VmReadSource } from "./vm-readings.js";
import { VmMetrics } from "./vm-metrics.js";
import { KvmStatsMetrics } from "./kvm-stats-metrics.js";
import { DisplayMetrics } from "./display-metrics.js";
import { HostMetrics, type HostReport } from "./host-metrics.js";
import type { KvmFacts } from "../host/kvm-probe.js";

export interface AgentMetricsSources {
  vms: VmReadSource;
  displayTotals: (vmId: string) => DisplayTotals | undefined;
  host: () => HostReport;
  probeKvm: () => Promise<KvmFacts>;
  /** One VM's reading budget (default VM_READ_BUDGET_MS). */
  vmReadBudgetMs?: number;
}

export interface Scrape {
  contentType: string;
  body: string;
}

export class AgentMetrics {
  readonly registry: Registry;
  readonly rpc: RpcMetrics;
  private readonly vm: VmMetrics;
  private readonly kvm: KvmStatsMetrics;
  private readonly display: DisplayMetrics;
  private readonly host: HostMetrics;
  private readonly collectSeconds: Gauge;
  private inFlight?: Promise<Scrape>;

  constructor(private readonly sources: AgentMetricsSources) {
    this.registry = createRegistry();
    this.rpc = new RpcMetrics(this.registry);
    this.vm = new VmMetrics(this.registry);
    this.kvm = new KvmStatsMetrics(this.registry);
    this.display = new DisplayMetrics(this.registry, sources.displayTotals);
    this.host = new HostMetrics(this.registry, sources.host, sources.probeKvm);
    this.collectSeconds = new Gauge({ name: "qumra_metrics_collect_seconds", help: "How long this scrape took to read the VMs, their helpers and the host", registers: [this.registry] });
  }

  /** The exposition text now (joins a scrape already collecting). */
  scrape(): Promise<Scrape> {
    this.inFlight ??= this.collect().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async collect(): Promise<Scrape> {
    const started = performance.now();
    const readings = await readVms(this.sources.vms, this.sources.vmReadBudgetMs ?? VM_READ_BUDGET_MS);
    // Everything from here to the text is one synchronous pass over one set of readings, except the host's KVM probe wait.
    await this.host.update(readings);
    this.vm.update(readings);
    this.kvm.update(readings);
    this.display.update(readings);
    this.collectSeconds.set((performance.now() - started) / 1000);
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
