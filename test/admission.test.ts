// Admission control and per-VM cgroups on a real agent with real helpers on real /dev/kvm: creates
// beyond the host's memory or --max-vms are refused with RESOURCE_EXHAUSTED and the numbers, a burst
// of creates gets OK or RESOURCE_EXHAUSTED (never INTERNAL), and each helper runs in its VM's cgroup.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, VmState, type VmSpec } from "../agent/src/gen/qumra/v1/vm.js";
import { HostServiceClient, type Host } from "../agent/src/gen/qumra/v1/host.js";
import { startAgent, cleanup, killHelpersOf, runCli, type RunningAgent } from "./helpers/agent.js";
import { call, callError } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { demoSpec } from "./helpers/vm.js";
import { findCgroup2Mount } from "../agent/src/vm/cgroups.js";

const MIB = 1n << 20n;
const OVERHEAD = 16n * MIB;
/** A small demo VM: 32 MiB of RAM and a 320×200 framebuffer. */
const small = (name: string, extra: Partial<VmSpec> = {}): VmSpec => demoSpec(name, { display: { width: 320, height: 200 }, ...extra });
const footprintOf = (spec: VmSpec) => spec.memoryBytes + BigInt(spec.display!.width * spec.display!.height * 4) + OVERHEAD;

interface Agent {
  agent: RunningAgent;
  vms: VmServiceClient;
  host: HostServiceClient;
  getHost: () => Promise<Host>;
  close: () => Promise<void>;
}

async function agentWith(args: string[]): Promise<Agent> {
  const agent = await startAgent(args);
  const vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
  const host = new HostServiceClient(agent.address!, grpc.credentials.createInsecure());
  return {
    agent,
    vms,
    host,
    getHost: () => call(host, host.getHost, {}),
    close: async () => {
      vms.close();
      host.close();
      await agent.stop();
      killHelpersOf(agent.runtimeDir);
      cleanup(agent.stateDir, agent.runtimeDir);
    },
  };
}

const create = (a: Agent, vmId: string, spec: VmSpec, timeoutMs = 20_000) => call(a.vms, a.vms.createVm, { vmId, requestId: randomUUID(), spec }, timeoutMs);

describe.skipIf(!hasKvm)("admission control on real KVM", () => {
  describe("memory", () => {
    let a: Agent;
    beforeAll(async () => {
      // About 240 MiB admitted on this host: a handful of small VMs, then refusals.
      a = await agentWith(["--memory-overcommit", "0.01", "--memory-reserve", "0"]);
    });
    afterAll(() => a.close());

    it("admits defined VMs' memory + framebuffers + overhead up to MemTotal × overcommit − reserve, stopped VMs included", async () => {
      const before = (await a.getHost()).admission!;
      expect(before.memoryOvercommit).toBe(0.01);
      expect(before.memoryReserveBytes).toBe(0n);
      const total = (await a.getHost()).memory!.totalBytes;
      expect(Math.abs(Number(before.memoryCapacityBytes - total / 100n))).toBeLessThanOrEqual(1);
      expect(before.vmOverheadBytes).toBe(OVERHEAD);
      expect(before.memoryAdmittedBytes).toBe(0n);

      const spec = small("m");
      const fits = Number(before.memoryCapacityBytes / footprintOf(spec));
      expect(fits).toBeGreaterThanOrEqual(2);
      for (let i = 0; i < fits; i++) expect((await create(a, `m${i}`, small(`m${i}`))).state).toBe(VmState.VM_STATE_CREATED);

      const refused = await callError(a.vms, a.vms.createVm, { vmId: "m-over", requestId: randomUUID(), spec: small("m-over") });
      expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(refused.details).toMatch(/^cannot create VM 'm-over': it needs 48\.2 MiB \(memory 32\.0 MiB \+ framebuffer 0\.2 MiB \+ overhead 16\.0 MiB\); [\d.]+ MiB of [\d.]+ MiB is admitted to \d+ VMs, stopped ones included \(MemTotal [\d.]+ GiB × --memory-overcommit 0\.01 − --memory-reserve 0\.0 MiB\); raise --memory-overcommit or delete VMs$/);

      const after = (await a.getHost()).admission!;
      expect(after.memoryAdmittedBytes).toBe(footprintOf(spec) * BigInt(fits));
      expect(after.vmsDefined).toBe(fits);

      // A stopped VM still counts: it may be started again without asking.
      await call(a.vms, a.vms.stopVm, { vmId: "m0", force: true, timeoutMs: 0 });
      expect((await callError(a.vms, a.vms.createVm, { vmId: "m-over", requestId: randomUUID(), spec: small("m-over") })).code).toBe(grpc.status.RESOURCE_EXHAUSTED);

      // A deleted one does not.
      await call(a.vms, a.vms.deleteVm, { vmId: "m0", force: true });
      expect((await create(a, "m-over", small("m-over"))).state).toBe(VmState.VM_STATE_CREATED);
    });

    it("refuses one VM bigger than the whole capacity, naming the numbers", async () => {
      const err = await callError(a.vms, a.vms.createVm, { vmId: "huge", requestId: randomUUID(), spec: small("huge", { memoryBytes: 1024n * MIB }) });
      expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(err.details).toContain("it needs 1.0 GiB (memory 1.0 GiB");
    });
  });

  describe("--max-vms", () => {
    let a: Agent;
    beforeAll(async () => {
      a = await agentWith(["--max-vms", "2"]);
    });
    afterAll(() => a.close());

    it("refuses the VM beyond --max-vms, counting stopped VMs, until one is deleted", async () => {
      await create(a, "n0", small("n0"));
      await create(a, "n1", small("n1"));
      await call(a.vms, a.vms.stopVm, { vmId: "n1", force: true, timeoutMs: 0 });
      const err = await callError(a.vms, a.vms.createVm, { vmId: "n2", requestId: randomUUID(), spec: small("n2") });
      expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(err.details).toBe("cannot create VM 'n2': this host has 2 VMs defined (stopped ones included) and --max-vms is 2; delete VMs or raise --max-vms");
      expect((await a.getHost()).admission!.maxVms).toBe(2);
      await call(a.vms, a.vms.deleteVm, { vmId: "n1", force: true });
      expect((await create(a, "n2", small("n2"))).state).toBe(VmState.VM_STATE_CREATED);
    });
  });

  describe("a burst of creates", () => {
    let a: Agent;
    beforeAll(async () => {
      a = await agentWith(["--max-vms", "16"]);
    });
    afterAll(() => a.close());

    it("800 concurrent creates (the issue's case 6) answer only OK or RESOURCE_EXHAUSTED, never INTERNAL", async () => {
      const burst = 800;
      const results = await Promise.allSettled(Array.from({ length: burst }, (_, i) => create(a, `b${i}`, small(`b${i}`), 180_000)));
      const codes = new Map<string, number>();
      const messages = new Set<string>();
      for (const r of results) {
        const code = r.status === "fulfilled" ? "OK" : grpc.status[(r.reason as grpc.ServiceError).code];
        codes.set(code, (codes.get(code) ?? 0) + 1);
        if (r.status === "rejected") messages.add((r.reason as grpc.ServiceError).details.replace(/VM 'b\d+'/, "VM X").replace(/\d+/g, "N"));
      }
      expect(Object.fromEntries(codes), [...messages].join("\n")).toEqual({ OK: 16, RESOURCE_EXHAUSTED: burst - 16 });
      // Both bounds answered: the queue of creates and --max-vms.
      expect([...messages].some((m) => m.startsWith("too many creates in progress"))).toBe(true);
      expect([...messages].some((m) => m.includes("--max-vms is N"))).toBe(true);
      const { vms } = await call(a.vms, a.vms.listVms, { state: 0, labelSelector: {} });
      expect(vms).toHaveLength(16);
      const host = (await a.getHost()).admission!;
      expect(host.createsInProgress).toBe(0);
      expect(host.createsQueued).toBe(0);
      await Promise.all(vms.map((vm) => call(a.vms, a.vms.deleteVm, { vmId: vm.vmId, force: true })));
    });
  });
});

// The agent moves each helper into PARENT/vm-ID wherever a writable cgroup2 tree exists.
const cgroupMount = findCgroup2Mount();

describe.skipIf(!hasKvm)("per-VM cgroups on real KVM", () => {
  const parent = `qumra-test-${process.pid}-cg.slice`;
  let a: Agent;
  beforeAll(async () => {
    a = await agentWith(["--cgroup-parent", parent]);
  });
  afterAll(() => a.close());

  it("GetHost says whether cgroups are in use, where and with which controllers", async () => {
    const { cgroups } = await a.getHost();
    expect(cgroupMount, "this host has a cgroup2 mount").toBeDefined();
    expect(cgroups).toMatchObject({ enabled: true, path: path.join(cgroupMount!, parent) });
    const missing = ["memory", "pids", "cpu"].filter((c) => !cgroups!.controllers.includes(c));
    if (missing.length) expect(cgroups!.reason).toContain(`the ${missing.join(", ")} controller`);
    else expect(cgroups!.reason).toBe("");
  });

  it("the helper runs in its VM's cgroup with memory.max, pids.max and cpu.weight from the spec; the cgroup goes with the VM", async () => {
    const { cgroups } = await a.getHost();
    const spec = small("cg", { vcpus: 2, cpuWeight: 250 });
    const vm = await create(a, "cg", spec);
    const dir = path.join(cgroupMount!, parent, "vm-cg");
    const membership = readFileSync(`/proc/${vm.helperPid}/cgroup`, "utf8").split("\n").find((l) => l.startsWith("0::"));
    expect(membership).toBe(`0::/${parent}/vm-cg`);
    expect(readFileSync(path.join(dir, "cgroup.procs"), "utf8").trim().split("\n")).toEqual([String(vm.helperPid)]);
    const limits = { memory: ["memory.max", String(footprintOf(spec))], pids: ["pids.max", "18"], cpu: ["cpu.weight", "250"] } as const;
    for (const controller of cgroups!.controllers as (keyof typeof limits)[]) {
      const [file, value] = limits[controller];
      expect(readFileSync(path.join(dir, file), "utf8").trim(), file).toBe(value);
    }
    // Started inside its cgroup, the guest runs; then deleted, the cgroup is removed once the helper exited.
    expect((await call(a.vms, a.vms.startVm, { vmId: "cg" })).state).toBe(VmState.VM_STATE_RUNNING);
    expect(readFileSync(`/proc/${vm.helperPid}/cgroup`, "utf8")).toContain(`0::/${parent}/vm-cg\n`);
    await call(a.vms, a.vms.deleteVm, { vmId: "cg", force: true });
    await until(() => !existsSync(dir));
    expect(existsSync(dir)).toBe(false);
  });

  it("a helper keeps its cgroup across kill -9 of the agent; the new agent removes it when the VM is deleted", async () => {
    const dir = path.join(cgroupMount!, parent, "vm-keep");
    const vm = await create(a, "keep", small("keep"));
    a.agent.process.kill("SIGKILL");
    await a.agent.stop();
    const again = await startAgent(["--cgroup-parent", parent], { stateDir: a.agent.stateDir, runtimeDir: a.agent.runtimeDir });
    const vms = new VmServiceClient(again.address!, grpc.credentials.createInsecure());
    try {
      expect((await call(vms, vms.getVm, { vmId: "keep" })).helperPid).toBe(vm.helperPid);
      expect(readFileSync(`/proc/${vm.helperPid}/cgroup`, "utf8")).toContain(`0::/${parent}/vm-keep\n`);
      await call(vms, vms.deleteVm, { vmId: "keep", force: true });
      await until(() => !existsSync(dir));
      expect(existsSync(dir)).toBe(false);
    } finally {
      vms.close();
      // The rest of this block talks to the new agent.
      a.vms.close();
      a.host.close();
      a = { ...a, agent: again, vms: new VmServiceClient(again.address!, grpc.credentials.createInsecure()), host: new HostServiceClient(again.address!, grpc.credentials.createInsecure()) };
      a.getHost = () => call(a.host, a.host.getHost, {});
      a.close = async () => {
        a.vms.close();
        a.host.close();
        await again.stop();
        killHelpersOf(again.runtimeDir);
        cleanup(again.stateDir, again.runtimeDir);
      };
    }
  });

  it("qumra host info shows the admission and the cgroups", async () => {
    const r = await runCli(["--host", a.agent.address!, "host", "info"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^admission: +[\d.]+ \S+ of [\d.]+ \S+ admitted \(overcommit 1, reserve [\d.]+ \S+\), 0 of 64 VMs$/m);
    expect(r.stdout).toMatch(new RegExp(`^cgroups: +${path.join(cgroupMount!, parent)} \\(`, "m"));
  });

  it("spec.cpu_weight outside 1..10000 is INVALID_ARGUMENT", async () => {
    const err = await callError(a.vms, a.vms.createVm, { vmId: "w", requestId: randomUUID(), spec: small("w", { cpuWeight: 10001 }) });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe("spec.cpu_weight 10001 is invalid: 1 to 10000 (0 means 100)");
  });

  it("--cgroups off runs helpers without and says so", async () => {
    const off = await agentWith(["--cgroups", "off"]);
    try {
      expect((await off.getHost()).cgroups).toEqual({ enabled: false, path: "", controllers: [], reason: "--cgroups off" });
      const vm = await create(off, "nocg", small("nocg"));
      expect(readFileSync(`/proc/${vm.helperPid}/cgroup`, "utf8")).not.toContain("/vm-nocg");
    } finally {
      await off.close();
    }
  });
});

/** Polls a condition (a helper's exit is asynchronous); gives up after a generous bound. */
async function until(cond: () => boolean, bound = 10_000): Promise<void> {
  for (const end = Date.now() + bound; !cond() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
}
