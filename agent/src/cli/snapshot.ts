// qumra vm snapshot|restore|snapshots|snapshot-delete: snapshots of VMs in the agent's state dir.
import type { Command } from "commander";
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { VmServiceClient, type Snapshot, type SnapshotProgress, type Vm } from "../gen/qumra/v1/vm.js";
import { callUnary, deadline, type GlobalOptions } from "./connection.js";
import { withClients } from "./fan-out.js";
import { bytes, fields, table } from "./format.js";
import { followProgress } from "./progress.js";
import { vmView } from "./vm.js";

type Globals = () => GlobalOptions;

/** A snapshot as the CLI shows it (JSON and text). */
export function snapshotView(s: Snapshot) {
  return {
    name: s.name,
    sourceVmId: s.sourceVmId,
    createdAt: s.createdAt?.toISOString(),
    wasRunning: s.wasRunning,
    vcpus: s.spec?.vcpus ?? 0,
    memoryBytes: Number(s.memoryBytes),
    memoryDataBytes: Number(s.memoryDataBytes),
    stateBytes: Number(s.stateBytes),
    diskBytes: Number(s.diskBytes),
    stateFormat: s.stateFormat,
    display: s.spec?.display ? `${s.spec.display.width}x${s.spec.display.height}` : "",
  };
}

function renderSnapshot(s: Snapshot): string {
  const v = snapshotView(s);
  return fields([
    ["snapshot", v.name],
    ["of VM", `${v.sourceVmId} (${v.wasRunning ? "was running" : "was paused"})`],
    ["taken", v.createdAt],
    ["memory", `${bytes(v.memoryBytes)}, ${bytes(v.memoryDataBytes)} of it data`],
    ["state", bytes(v.stateBytes)],
    ["on disk", bytes(v.diskBytes)],
    ["format", v.stateFormat],
  ]);
}

/** Reads a SnapshotVm / RestoreVm stream to its last message (the one with `done`), with a progress bar. */
function follow(stream: grpc.ClientReadableStream<SnapshotProgress>, label: string, options: GlobalOptions): Promise<SnapshotProgress> {
  return followProgress(stream, label, !options.json, (p) => ({ done: Number(p.bytesDone), total: Number(p.bytesTotal) }), (p) => p.done, "the agent ended the stream before the work was done");
}

export function registerSnapshot(vm: Command, globals: Globals): void {
  vm.command("snapshot <vm-id> <name>")
    .description("save a RUNNING (paused briefly) or PAUSED VM to the agent's state dir as snapshot NAME")
    .action(async (vmId: string, name: string) => {
      const options = globals();
      if (options.host.length > 1) throw new Error("snapshot works on one host at a time (a snapshot stays on the host of its VM)");
      await withClients(options, VmServiceClient, async (c) => {
        const last = await follow(c.snapshotVm({ vmId, snapshotName: name }, { deadline: deadline(options) }), `snapshot ${name}`, options);
        return last.snapshot!;
      }, { text: renderSnapshot, json: snapshotView });
    });

  vm.command("restore <name>")
    .description("make a VM from snapshot NAME: running, or paused at the saved point with --paused")
    .option("--from-vm <vm-id>", "the VM the snapshot was taken of (checked against the snapshot; also the default --vm-id)")
    .option("--vm-id <vm-id>", "the new VM's id (default: --from-vm, which must have been deleted)")
    .option("--paused", "leave the VM paused at the saved point")
    .option("--request-id <id>", "idempotency key; reuse it to retry safely (default: random)")
    .action(async (name: string, o: { fromVm?: string; vmId?: string; paused?: boolean; requestId?: string }) => {
      const options = globals();
      if (options.host.length > 1) throw new Error("restore works on one host at a time (the snapshot is on one host)");
      const vmId = o.vmId ?? o.fromVm;
      if (!vmId) throw new Error("give --vm-id NEW (or --from-vm SRC to restore under the source VM's id)");
      await withClients(options, VmServiceClient, async (c) => {
        const stream = c.restoreVm({ vmId, requestId: o.requestId ?? randomUUID(), sourceVmId: o.fromVm ?? "", snapshotName: name, start: !o.paused }, { deadline: deadline(options) });
        return (await follow(stream, `restore ${name}`, options)).vm!;
      }, { text: (v: Vm) => `restored ${v.vmId} from ${name}: ${vmView(v).state}`, json: vmView });
    });

  vm.command("snapshots")
    .description("the snapshots in each host's state dir")
    .action(async () => {
      const options = globals();
      await withClients(options, VmServiceClient, async (c) => (await callUnary(c.listSnapshots.bind(c), {}, options)).snapshots, {
        text: (list) => table(["NAME", "OF VM", "TAKEN", "MEMORY", "DATA", "STATE", "ON DISK"], list.map(snapshotView).map((s) => [s.name, s.sourceVmId, s.createdAt, bytes(s.memoryBytes), bytes(s.memoryDataBytes), bytes(s.stateBytes), bytes(s.diskBytes)])),
        json: (list) => list.map(snapshotView),
      });
    });

  vm.command("snapshot-delete <name>")
    .description("remove a snapshot")
    .action(async (name: string) => {
      const options = globals();
      await withClients(options, VmServiceClient, async (c) => {
        await callUnary(c.deleteSnapshot.bind(c), { snapshotName: name }, options);
        return { name, deleted: true };
      }, (r) => `deleted snapshot ${r.name}`);
    });
}
