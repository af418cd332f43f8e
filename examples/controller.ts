// A small fleet controller on the client SDK: place N demo VMs across several agents (least loaded
// first), watch every agent and print what happens, and drain a host by moving its VMs elsewhere.
//
//   node dist/examples/controller.js --agent 10.0.0.5:50051 --agent 10.0.0.6:50051 --vms 4 \
//        --tls-ca ca.pem --tls-cert me.pem --tls-key me-key.pem [--drain 10.0.0.5:50051]
//
// move() is live migration (MigrateVm on the source, with this controller's credentials at the target):
// a running VM keeps running while it moves; a stopped one is recreated there.
import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { connect, NotFoundError, VmEventType, VmState, type QumraClient, type TlsOptions, type Vm, type VmEvent } from "qumra/client";

export interface Host {
  address: string;
  client: QumraClient;
  /** What this host's watch says: vm id → state. Rebuilt from snapshots after a RESYNC. */
  vms: Map<string, VmState>;
  /** Every numbered event delivered (not snapshots), per agent instance: what a test checks for gaps. */
  events: VmEvent[];
  /** The RESYNCs seen: from then on this host's view was rebuilt from snapshots. */
  resyncs: { instanceId: string; sequence: bigint }[];
}

export class Controller {
  readonly hosts: Host[];
  private readonly stopWatching = new AbortController();
  private readonly watching: Promise<void>[] = [];

  constructor(addresses: string[], private readonly tls?: TlsOptions, private readonly log: (line: string) => void = console.log) {
    this.hosts = addresses.map((address) => ({ address, client: connect({ address, tls }), vms: new Map(), events: [], resyncs: [] }));
  }

  host(address: string): Host {
    const host = this.hosts.find((h) => h.address === address);
    if (!host) throw new Error(`no host ${address} (hosts: ${this.hosts.map((h) => h.address).join(", ")})`);
    return host;
  }

  /** Watches every host until close(): each item updates that host's view and is printed. */
  watchAll(): void {
    for (const host of this.hosts) this.watching.push(this.watch(host));
  }

  private async watch(host: Host): Promise<void> {
    for await (const item of host.client.watchVms({ signal: this.stopWatching.signal })) {
      if (item.kind === "disconnected") {
        this.log(`[${host.address}] watch lost (${item.error.codeName}: ${item.error.details}); retrying in ${item.retryInMs} ms`);
      } else if (item.kind === "resync") {
        // The agent restarted (or we fell too far behind): forget what we knew; the snapshots that follow are the truth.
        this.log(`[${host.address}] resync: agent instance ${item.instanceId}, state follows as snapshots`);
        host.vms.clear();
        host.resyncs.push({ instanceId: item.instanceId, sequence: item.sequence });
      } else if (item.kind === "event") {
        const e = item.event;
        if (e.type === VmEventType.VM_EVENT_TYPE_DELETED) host.vms.delete(e.vmId);
        else if (e.vmId) host.vms.set(e.vmId, e.state);
        if (e.type !== VmEventType.VM_EVENT_TYPE_SNAPSHOT) host.events.push(e);
        this.log(`[${host.address}] #${e.sequence} ${VmEventType[e.type].replace("VM_EVENT_TYPE_", "")} ${e.vmId} ${VmState[e.state].replace("VM_STATE_", "")}${e.reason ? ` (${e.reason})` : ""}`);
      }
    }
  }

  /** The host with the fewest VMs (asked now, not from the watch), excluding some. */
  async leastLoaded(exclude: Host[] = []): Promise<Host> {
    const candidates = this.hosts.filter((h) => !exclude.includes(h));
    if (candidates.length === 0) throw new Error("no host left to place VMs on");
    const loads = await Promise.all(candidates.map(async (h) => (await h.client.listVms()).length));
    return candidates[loads.indexOf(Math.min(...loads))];
  }

  /** Creates and starts `count` demo VMs named PREFIX-1…, each on the least loaded host at that moment. */
  async place(count: number, prefix = "demo"): Promise<Map<string, Host>> {
    const placed = new Map<string, Host>();
    for (let i = 1; i <= count; i++) {
      const vmId = `${prefix}-${i}`;
      const host = await this.leastLoaded();
      await host.client.createVm({ vmId, spec: { name: vmId, memoryBytes: 32 << 20, boot: { $case: "demo", value: {} }, labels: { app: prefix } } });
      await host.client.startVm(vmId);
      placed.set(vmId, host);
      this.log(`placed ${vmId} on ${host.address}`);
    }
    return placed;
  }

  /** Moves every VM off `address` onto the least loaded other hosts; the host ends empty. */
  async drain(address: string): Promise<void> {
    const source = this.host(address);
    for (const vm of await source.client.listVms()) {
      const target = await this.leastLoaded([source]);
      await this.move(vm, source, target);
      this.log(`moved ${vm.vmId}: ${source.address} → ${target.address}`);
    }
  }

  /**
   * A RUNNING or PAUSED VM migrates live; a VM that does not run is recreated on the target (same spec),
   * then the original deleted: if the target fails, the original is still there.
   */
  async move(vm: Vm, source: Host, target: Host): Promise<Vm> {
    if (vm.state === VmState.VM_STATE_RUNNING || vm.state === VmState.VM_STATE_PAUSED) {
      await source.client.migrateVm({ vmId: vm.vmId, destination: target.address, tls: this.tls });
      return target.client.getVm(vm.vmId);
    }
    // GetVm does not echo a flat image's bytes back: only VMs whose spec is complete can be recreated.
    if (vm.spec?.boot?.$case === "flatImage" && vm.spec.boot.value.image.length === 0) throw new Error(`cannot move ${vm.vmId}: its flat image is not returned by the agent; recreate it from your own copy`);
    await source.client.stopVm(vm.vmId, { force: true });
    await target.client.createVm({ vmId: vm.vmId, requestId: `move-${vm.vmId}-${randomUUID()}`, spec: vm.spec ?? {} });
    const moved = await target.client.getVm(vm.vmId);
    await source.client.deleteVm(vm.vmId).catch((err: unknown) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
    return moved;
  }

  async close(): Promise<void> {
    this.stopWatching.abort();
    await Promise.allSettled(this.watching);
    for (const h of this.hosts) h.client.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      agent: { type: "string", multiple: true },
      vms: { type: "string", default: "4" },
      drain: { type: "string" },
      "watch-ms": { type: "string", default: "1000" },
      "tls-ca": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
    },
  });
  const agents = values.agent ?? [];
  if (agents.length === 0) throw new Error("give at least one --agent HOST:PORT (or unix:/path)");
  const count = Number(values.vms);
  if (!Number.isInteger(count) || count < 0 || count > 1000) throw new Error(`--vms ${values.vms}: expected 0..1000`);
  const tls = values["tls-ca"] || values["tls-cert"] ? { ca: values["tls-ca"], cert: values["tls-cert"], key: values["tls-key"] } : undefined;
  const controller = new Controller(agents, tls);
  controller.watchAll();
  try {
    await controller.place(count);
    if (values.drain) await controller.drain(values.drain);
    // Let the last events arrive before printing the summary.
    await new Promise((r) => setTimeout(r, Number(values["watch-ms"])));
    for (const h of controller.hosts) console.log(`${h.address}: ${[...h.vms].map(([id, s]) => `${id}=${VmState[s].replace("VM_STATE_", "")}`).join(" ") || "(empty)"}`);
  } finally {
    await controller.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
