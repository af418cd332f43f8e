// Issue 15, case 1: one agent per state dir, one helper per runtime dir. A second agent on the same
// state dir refuses to start, naming the holder's pid, and touches nothing: every VM keeps running and
// the first agent still controls them. A second helper on a VM's runtime dir refuses and removes nothing.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { existsSync, readlinkSync, symlinkSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, VmState } from "../agent/src/gen/qumra/v1/vm.js";
import { agentBin, startAgent, cleanup, killHelpersOf, tempDir, type RunningAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { createVm } from "./helpers/vm.js";
import { argvOf, runAgentToEnd, runToEnd } from "./helpers/state.js";
import { helpersIn } from "./helpers/proc.js";

describe.skipIf(!hasKvm)("one agent per state dir", () => {
  let first: RunningAgent;
  let vms: VmServiceClient;
  const otherRuntime = tempDir("run2");
  const dirs: string[] = [otherRuntime];

  beforeAll(async () => {
    first = await startAgent();
    dirs.push(first.stateDir, first.runtimeDir);
    vms = new VmServiceClient(first.address!, grpc.credentials.createInsecure());
    await createVm(vms, "lock-a");
    await createVm(vms, "lock-b");
  }, 60_000);
  afterAll(async () => {
    vms.close();
    await first.stop();
    killHelpersOf(first.runtimeDir);
    killHelpersOf(otherRuntime);
    cleanup(...dirs);
  });

  it("a second agent on the same state dir (another runtime dir) refuses, naming the holder's pid, and every VM keeps running", async () => {
    const before = helpersIn(first.runtimeDir);
    expect(before.size).toBe(2);
    expect(readlinkSync(path.join(first.stateDir, "agent.lock"))).toMatch(new RegExp(`^${first.process.pid}:\\d+$`));

    const second = await runAgentToEnd(["--listen", "127.0.0.1:0", "--state-dir", first.stateDir, "--runtime-dir", otherRuntime]);
    expect(second.code).not.toBe(0);
    expect(second.output).toContain(`another qumra-agent (pid ${first.process.pid}`);
    // It touched nothing: no sockets of its own, no helpers, the lock still the first agent's.
    expect(existsSync(path.join(otherRuntime, "qumra.sock"))).toBe(false);
    expect(helpersIn(otherRuntime).size).toBe(0);
    expect(readlinkSync(path.join(first.stateDir, "agent.lock"))).toMatch(new RegExp(`^${first.process.pid}:`));

    expect(helpersIn(first.runtimeDir)).toEqual(before);
    for (const id of ["lock-a", "lock-b"]) {
      const vm = await call(vms, vms.getVm, { vmId: id });
      expect(vm.state).toBe(VmState.VM_STATE_RUNNING);
      expect(before.has(vm.helperPid)).toBe(true);
      // Still controlled by the first agent: a round trip through the helper works.
      expect((await call(vms, vms.pauseVm, { vmId: id })).state).toBe(VmState.VM_STATE_PAUSED);
      expect((await call(vms, vms.resumeVm, { vmId: id })).state).toBe(VmState.VM_STATE_RUNNING);
    }
  }, 60_000);

  it("a second helper started on a VM's runtime dir refuses and leaves the first helper's socket and framebuffer", async () => {
    const [pid, dir] = [...helpersIn(first.runtimeDir)].find(([, d]) => d.endsWith("/lock-a"))!;
    const argv = argvOf(pid);
    const again = await runToEnd(argv[0]!, argv.slice(1));
    expect(again.code).toBe(1);
    expect(again.output).toContain("another qumra-vmm holds");
    expect(existsSync(path.join(dir, "control.sock"))).toBe(true);
    expect(existsSync(path.join(dir, "framebuffer"))).toBe(true);
    const vm = await call(vms, vms.pauseVm, { vmId: "lock-a" });
    expect(vm.helperPid).toBe(pid);
    await call(vms, vms.resumeVm, { vmId: "lock-a" });
  }, 30_000);

  it("four agents started at once on a state dir with a stale lock: exactly one runs, the others refuse", async () => {
    const stateDir = tempDir("race");
    dirs.push(stateDir);
    symlinkSync("999999999:1", path.join(stateDir, "agent.lock"));
    const runs = [0, 1, 2, 3].map(() => {
      const runtimeDir = tempDir("race-run");
      dirs.push(runtimeDir);
      const child = spawn(process.execPath, [agentBin, "--listen", "127.0.0.1:0", "--state-dir", stateDir, "--runtime-dir", runtimeDir], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const outcome = new Promise<"listening" | "refused" | "other">((resolve) => {
        child.stdout.on("data", () => out.includes('"qumra-agent listening"') && resolve("listening"));
        child.on("exit", (code) => resolve(code === 3 && out.includes("another qumra-agent") ? "refused" : "other"));
      });
      return { child, outcome };
    });
    const outcomes = await Promise.all(runs.map((r) => r.outcome));
    await Promise.all(runs.map((r) => (r.child.exitCode !== null || r.child.signalCode !== null ? undefined : (r.child.kill("SIGTERM"), new Promise((res) => r.child.once("exit", res))))));
    expect(outcomes.filter((o) => o === "listening")).toHaveLength(1);
    expect(outcomes.filter((o) => o === "refused")).toHaveLength(3);
  }, 60_000);

  it("a lock left by a killed agent is taken over; the new agent re-attaches to every VM", async () => {
    const pids = helpersIn(first.runtimeDir);
    first.process.kill("SIGKILL");
    await first.stop();
    vms.close();
    first = await startAgent([], { stateDir: first.stateDir, runtimeDir: first.runtimeDir });
    vms = new VmServiceClient(first.address!, grpc.credentials.createInsecure());
    expect(readlinkSync(path.join(first.stateDir, "agent.lock"))).toMatch(new RegExp(`^${first.process.pid}:`));
    expect(helpersIn(first.runtimeDir)).toEqual(pids);
    for (const id of ["lock-a", "lock-b"]) expect((await call(vms, vms.getVm, { vmId: id })).state).toBe(VmState.VM_STATE_RUNNING);
  }, 60_000);
});
