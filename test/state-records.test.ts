// Issue 15, case 4: hostile or broken vm.json records never stop the agent from starting, are quarantined
// (listed in GetHost with any helper still running for them, which DeleteVm with force kills), and
// nothing outside the state dir is ever touched.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { VmServiceClient, VmState } from "../agent/src/gen/qumra/v1/vm.js";
import { HostServiceClient } from "../agent/src/gen/qumra/v1/host.js";
import { startAgent, cleanup, killHelpersOf, tempDir, type RunningAgent } from "./helpers/agent.js";
import { call, callError } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { createVm } from "./helpers/vm.js";
import { helpersIn } from "./helpers/proc.js";

describe.skipIf(!hasKvm)("corrupt and hostile VM records", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let host: HostServiceClient;
  const parent = tempDir("records");
  const stateDir = path.join(parent, "state");
  const runtimeDir = tempDir("run");
  const victim = `victim-${randomUUID().slice(0, 8)}`;
  const victimDir = path.join(parent, victim); // what "../../victim" resolves to from STATE/vms/ID

  const connect = () => {
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    host = new HostServiceClient(agent.address!, grpc.credentials.createInsecure());
  };

  beforeAll(async () => {
    agent = await startAgent([], { stateDir, runtimeDir });
    connect();
    await createVm(vms, "good");
    await createVm(vms, "broken-live");
    await agent.stop();
    vms.close();
    host.close();
    const record = (id: string, text: string) => {
      mkdirSync(path.join(stateDir, "vms", id), { recursive: true });
      writeFileSync(path.join(stateDir, "vms", id, "vm.json"), text);
    };
    record("nul", "null");
    record("empty", "{}");
    record("hostile", JSON.stringify({ vmId: `../../${victim}` }));
    record("garbage", "{not json");
    record("broken-live", "{}"); // its helper still runs
    mkdirSync(victimDir);
    writeFileSync(path.join(victimDir, "keep.txt"), "outside the state dir\n");
    agent = await startAgent([], { stateDir, runtimeDir });
    connect();
  }, 60_000);
  afterAll(async () => {
    vms.close();
    host.close();
    await agent.stop();
    killHelpersOf(runtimeDir);
    cleanup(parent, runtimeDir);
  });

  it("the agent starts; only the good VM is loaded and ListVms works", async () => {
    const { vms: list } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
    expect(list.map((v) => v.vmId)).toEqual(["good"]);
    expect(list[0]!.state).toBe(VmState.VM_STATE_RUNNING);
  });

  it("GetHost lists every bad record as quarantined, with the helper still running for one of them", async () => {
    const h = await call(host, host.getHost, {});
    const q = new Map(h.agent!.quarantined.map((r) => [r.name, r]));
    expect([...q.keys()].sort()).toEqual(["broken-live", "empty", "garbage", "hostile", "nul"]);
    expect(q.get("nul")!.problem).toContain("null");
    expect(q.get("hostile")!.problem).toContain("is not its folder's name");
    for (const r of q.values()) expect(r.quarantinedAs.startsWith(path.join(stateDir, "quarantine") + path.sep)).toBe(true);
    expect(readdirSync(path.join(stateDir, "quarantine"))).toHaveLength(5);
    expect(existsSync(path.join(stateDir, "vms", "nul"))).toBe(false);
    const live = [...helpersIn(runtimeDir)].find(([, d]) => d.endsWith("/broken-live"));
    expect(live).toBeDefined();
    expect(q.get("broken-live")!.helperPids).toEqual([live![0]]);
    expect(h.agent!.degraded).toBe("");
  });

  it("deleting the hostile record's names never touches the victim dir outside the state dir", async () => {
    expect((await callError(vms, vms.deleteVm, { vmId: `../../${victim}`, force: true })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await callError(vms, vms.deleteVm, { vmId: "hostile", force: false })).code).toBe(grpc.status.FAILED_PRECONDITION);
    await call(vms, vms.deleteVm, { vmId: "hostile", force: true });
    expect(existsSync(path.join(victimDir, "keep.txt"))).toBe(true);
  });

  it("DeleteVm with force on a quarantined record kills its verified helper", async () => {
    await call(vms, vms.deleteVm, { vmId: "broken-live", force: true });
    expect([...helpersIn(runtimeDir).values()].some((d) => d.endsWith("/broken-live"))).toBe(false);
    const h = await call(host, host.getHost, {});
    expect(h.agent!.quarantined.map((r) => r.name)).not.toContain("broken-live");
    // The good VM is untouched throughout.
    expect((await call(vms, vms.getVm, { vmId: "good" })).state).toBe(VmState.VM_STATE_RUNNING);
  });
});
