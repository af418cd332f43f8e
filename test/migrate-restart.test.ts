// What a restarted source agent does with a VM whose migration it was in the middle of: the record's
// intent is written as MigrateVm writes it, the agent is killed, and the next agent reconciles it.
// Before the switch (phase copy) a VM the migration had paused runs again; at the switch (phase commit)
// the destination may already run it, so it stays paused here and says so.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, VmState } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { createVm, demoSpec, waitForState } from "./helpers/vm.js";

describe.skipIf(!hasKvm)("a source agent restarted in the middle of a migration", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  const connect = () => (vms = new VmServiceClient(`unix:${agent.socket}`, grpc.credentials.createInsecure()));

  beforeAll(async () => {
    agent = await startAgent();
    connect();
  });
  afterAll(async () => {
    vms.close();
    await agent.stop();
    killHelpersOf(agent.runtimeDir);
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  /** Pauses the VM (as stop-and-copy does), writes the intent into its record, kill -9s and restarts the agent. */
  const interrupt = async (vmId: string, intent: object) => {
    await call(vms, vms.pauseVm, { vmId });
    await agent.stop("SIGKILL");
    const file = path.join(agent.stateDir, "vms", vmId, "vm.json");
    const record = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(file, JSON.stringify({ ...record, state: "RUNNING", intent: { at: new Date().toISOString(), peer: "unix:/run/elsewhere/qumra.sock", migrationId: "m-1", ...intent } }));
    vms.close();
    agent = await startAgent([], { stateDir: agent.stateDir, runtimeDir: agent.runtimeDir });
    connect();
  };

  it("before the switch: the VM runs again here", async () => {
    await createVm(vms, "copying", demoSpec("copying"));
    await interrupt("copying", { op: "migrate-out", migrationPhase: "copy", resume: true });
    const vm = await waitForState(vms, "copying", VmState.VM_STATE_RUNNING);
    expect(vm.stateReason).toMatch(/migration to unix:\/run\/elsewhere\/qumra.sock was interrupted by an agent restart before the switch/);
  });

  it("at the switch: the VM stays paused here, saying where to look", async () => {
    await createVm(vms, "switching", demoSpec("switching"));
    await interrupt("switching", { op: "migrate-out", migrationPhase: "commit", resume: true });
    const vm = await waitForState(vms, "switching", VmState.VM_STATE_PAUSED);
    expect(vm.stateReason).toMatch(/interrupted by an agent restart at the switch: it stays paused here; if it runs there, delete it here with force, otherwise resume it/);
    // Nothing is left pending: the operator's resume works.
    expect((await call(vms, vms.resumeVm, { vmId: "switching" })).state).toBe(VmState.VM_STATE_RUNNING);
  });
});
