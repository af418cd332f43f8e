// Prometheus metrics of a real agent on real KVM: two running demo VMs, /metrics scraped over HTTP on
// --metrics and on --http, the text parsed line by line. States, exits that grow, memory as specified,
// helper RSS, RPCs by method and code (a NOT_FOUND, a refusal), display totals, a stopped helper that
// must not stall the scrape, pause, delete (its series gone), and clients that send garbage or stall.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import net from "node:net";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceClient, ImageCompression } from "../agent/src/gen/qumra/v1/display.js";
import { startAgent, cleanup, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { call, callError } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { attachConsole, createVm, demoSpec, waitForState, type ConsoleReader } from "./helpers/vm.js";
import { VmState } from "../agent/src/gen/qumra/v1/vm.js";
import { watchDisplay } from "./helpers/display.js";
import { httpGet, scrape, type Exposition } from "./helpers/prometheus.js";

const MIB = 1024 * 1024;
const A = { vmId: "m-a", name: "alpha", memory: 32 * MIB };
const B = { vmId: "m-b", name: "beta", memory: 48 * MIB };
const STATES = ["CREATED", "RUNNING", "PAUSED", "STOPPED", "CRASHED"];

/** Every vCPU exit of one VM, all reasons and vCPUs together. */
const exitsOf = (m: Exposition, vmId: string) => m.find("qumra_vm_vcpu_exits_total", { vm_id: vmId }).reduce((n, s) => n + s.value, 0);

/** Scrapes until `pred` holds (at most `timeoutMs`); returns that scrape. */
async function scrapeUntil(address: string, pred: (m: Exposition) => boolean, what: string, timeoutMs = 20_000): Promise<Exposition> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await scrape(address);
    if (pred(m)) return m;
    if (Date.now() > deadline) throw new Error(`metrics: ${what} not seen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(!hasKvm)("metrics of a real agent running two demo VMs", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let display: DisplayServiceClient;
  let consoles: ConsoleReader[] = [];

  beforeAll(async () => {
    agent = await startAgent(["--metrics", "127.0.0.1:0", "--http", "127.0.0.1:0", "--display-workers", "1"]);
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    display = new DisplayServiceClient(agent.address!, grpc.credentials.createInsecure());
    for (const vm of [A, B]) await createVm(vms, vm.vmId, demoSpec(vm.name, { memoryBytes: BigInt(vm.memory), display: { width: 320, height: 240 } }));
    consoles = [A, B].map((vm) => attachConsole(vms, vm.vmId));
    await Promise.all(consoles.map((c) => c.waitFor("qumra demo guest")));
  }, 120_000);

  afterAll(async () => {
    for (const c of consoles) c.close();
    if (vms) {
      const { vms: left } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
      await Promise.all(left.map((vm) => call(vms, vms.deleteVm, { vmId: vm.vmId, force: true })));
      vms.close();
      display.close();
    }
    if (agent) {
      await agent.stop();
      killHelpersOf(agent.runtimeDir);
      cleanup(agent.stateDir, agent.runtimeDir);
    }
  });

  it("has per-VM series for both VMs: state, memory as specified, helper RSS, vCPUs, console bytes, KVM's own statistics", async () => {
    expect(agent.metrics).toMatch(/^127\.0\.0\.1:\d+$/);
    const m = await scrape(agent.metrics!);
    for (const vm of [A, B]) {
      const labels = { vm_id: vm.vmId, name: vm.name };
      for (const state of STATES) expect(m.value("qumra_vm_state", { ...labels, state }), `${vm.vmId} ${state}`).toBe(state === "RUNNING" ? 1 : 0);
      expect(m.value("qumra_vm_stats_up", labels)).toBe(1);
      expect(m.value("qumra_vm_helper_hung", labels)).toBe(0);
      expect(m.value("qumra_vm_memory_bytes", labels)).toBe(vm.memory);
      expect(m.value("qumra_vm_vcpus", labels)).toBe(1);
      expect(m.value("qumra_vm_helper_resident_memory_bytes", labels)).toBeGreaterThan(MIB);
      expect(m.value("qumra_vm_uptime_seconds", labels)).toBeGreaterThan(0);
      expect(m.value("qumra_vm_console_bytes_total", labels)).toBeGreaterThanOrEqual("qumra demo guest".length);
      const cpu = m.find("qumra_vm_helper_cpu_seconds_total", labels);
      expect(cpu.map((s) => s.labels.mode).sort()).toEqual(["system", "user"]);
      expect(cpu.reduce((n, s) => n + s.value, 0)).toBeGreaterThan(0);
      expect(m.find("qumra_vm_vcpu_exits_total", labels).map((s) => s.labels.reason).sort()).toEqual(["hlt", "io", "mmio", "other"]);
      // KVM_GET_STATS_FD, one family per statistic: the vCPU's "exits" and the VM's MMU ones are on every x86 kernel that has binary stats.
      const kvm = m.samples.filter((s) => s.name.startsWith("qumra_vm_kvm_") && s.labels.vm_id === vm.vmId);
      expect(kvm.length).toBeGreaterThan(10);
      expect(m.value("qumra_vm_kvm_vcpu_exits", labels)).toBeGreaterThan(0);
    }
    expect(m.types.get("qumra_vm_vcpu_exits_total")).toBe("counter");
    expect(m.types.get("qumra_vm_state")).toBe("gauge");
    expect(m.types.get("qumra_rpc_duration_seconds")).toBe("histogram");
    // Host: VMs by state, KVM, the agent itself and prom-client's process metrics under qumra_agent_.
    expect(m.value("qumra_vms", { state: "RUNNING" })).toBe(2);
    for (const state of STATES.filter((s) => s !== "RUNNING")) expect(m.value("qumra_vms", { state })).toBe(0);
    expect(m.value("qumra_host_kvm_available")).toBe(1);
    expect(m.value("qumra_agent_degraded")).toBe(0);
    expect(m.value("qumra_admission_memory_admitted_bytes")).toBeGreaterThan(A.memory + B.memory);
    expect(m.find("qumra_agent_info")[0].labels.instance_id).toMatch(/\S/);
    expect(m.value("qumra_agent_process_resident_memory_bytes")).toBeGreaterThan(10 * MIB);
    expect(m.value("qumra_kvm_stats_dropped_names")).toBe(0);
  });

  it("counts exits as they happen: the sum grows between two scrapes", async () => {
    const first = await scrape(agent.metrics!);
    const before = exitsOf(first, A.vmId);
    consoles[0].send("?"); // the guest answers on its serial port: port exits
    const later = await scrapeUntil(agent.metrics!, (m) => exitsOf(m, A.vmId) > before, `exits of ${A.vmId} above ${before}`);
    expect(exitsOf(later, A.vmId)).toBeGreaterThan(before);
    expect(later.value("qumra_vm_console_bytes_total", { vm_id: A.vmId })).toBeGreaterThanOrEqual(first.value("qumra_vm_console_bytes_total", { vm_id: A.vmId }));
  });

  it("counts RPCs by method and code, NOT_FOUND and refusals included, with their durations; unknown methods get no label of their own", async () => {
    const before = await scrape(agent.metrics!);
    const notFoundBefore = before.find("qumra_rpc_handled_total", { method: "GetVm", code: "NOT_FOUND" })[0]?.value ?? 0;
    const missing = await callError(vms, vms.getVm, { vmId: "no-such-vm" });
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    // The read-only socket is a viewer: pausing is refused before any handler runs.
    const viewer = new VmServiceClient(`unix:${agent.readOnlySocket}`, grpc.credentials.createInsecure());
    const refused = await callError(viewer, viewer.pauseVm, { vmId: A.vmId });
    expect(refused.code).toBe(grpc.status.PERMISSION_DENIED);
    viewer.close();
    // A path no service has, with a name a client made up.
    const stranger = new grpc.Client(agent.address!, grpc.credentials.createInsecure());
    const unknown = await new Promise<grpc.ServiceError>((resolve) =>
      stranger.makeUnaryRequest("/evil.Service/Made_Up_1234", (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (err) => resolve(err!)),
    );
    expect(unknown.code).toBe(grpc.status.UNIMPLEMENTED);
    stranger.close();

    const m = await scrapeUntil(agent.metrics!, (s) => s.find("qumra_rpc_handled_total", { method: "PauseVm", code: "PERMISSION_DENIED" }).length > 0, "the refused PauseVm");
    const vm = { service: "qumra.v1.VmService" };
    expect(m.value("qumra_rpc_handled_total", { ...vm, method: "CreateVm", code: "OK" })).toBe(2);
    expect(m.value("qumra_rpc_handled_total", { ...vm, method: "StartVm", code: "OK" })).toBe(2);
    expect(m.value("qumra_rpc_handled_total", { ...vm, method: "GetVm", code: "NOT_FOUND" })).toBe(notFoundBefore + 1);
    expect(m.value("qumra_rpc_handled_total", { ...vm, method: "PauseVm", code: "PERMISSION_DENIED" })).toBe(1);
    expect(m.value("qumra_rpc_duration_seconds_count", { ...vm, method: "CreateVm" })).toBe(2);
    expect(m.value("qumra_rpc_duration_seconds_bucket", { ...vm, method: "CreateVm", le: "+Inf" })).toBe(2);
    expect(m.value("qumra_rpc_duration_seconds_sum", { ...vm, method: "CreateVm" })).toBeGreaterThan(0);
    // Whatever path a client sends, no label value is made of it. (grpc-js answers a path no service has
    // before any interceptor runs, so such calls are not counted at all; labelsOf guards the rest.)
    expect(m.samples.some((s) => Object.values(s.labels).some((v) => v.includes("Made_Up") || v.includes("evil")))).toBe(false);
  });

  it("counts a display's updates and encoded bytes by codec and its viewers, which drop to 0 when the viewer leaves", async () => {
    const w = watchDisplay(display, { vmId: A.vmId, compression: ImageCompression.IMAGE_COMPRESSION_LZ, maxFps: 30, filePixels: () => new Uint8Array(0), width: 320, timeoutMs: 20_000 });
    await w.until(() => w.updates.length >= 1, "a keyframe");
    const labels = { vm_id: A.vmId, name: A.name };
    const during = await scrape(agent.metrics!);
    expect(during.value("qumra_vm_display_viewers", labels)).toBe(1);
    expect(during.value("qumra_vm_display_updates_total", labels)).toBeGreaterThanOrEqual(1);
    expect(during.value("qumra_vm_display_encoded_bytes_total", { ...labels, codec: "lz" })).toBeGreaterThan(0);
    expect(during.value("qumra_vm_display_rects_total", { ...labels, codec: "lz" })).toBeGreaterThan(0);
    expect(during.value("qumra_vm_display_encoded_bytes_total", { ...labels, codec: "quic" })).toBe(0);
    expect(during.value("qumra_vm_display_fps", labels)).toBeGreaterThan(0);
    expect(during.value("qumra_vm_display_viewers", { vm_id: B.vmId })).toBe(0);
    w.cancel();
    await w.ended;
    const after = await scrapeUntil(agent.metrics!, (m) => m.value("qumra_vm_display_viewers", labels) === 0, "viewers back to 0");
    // Totals outlive the viewer.
    expect(after.value("qumra_vm_display_updates_total", labels)).toBeGreaterThanOrEqual(during.value("qumra_vm_display_updates_total", labels));
  });

  it("pausing a VM changes its state series and the host's counts", async () => {
    await call(vms, vms.pauseVm, { vmId: A.vmId });
    const m = await scrape(agent.metrics!);
    expect(m.value("qumra_vm_state", { vm_id: A.vmId, state: "PAUSED" })).toBe(1);
    expect(m.value("qumra_vm_state", { vm_id: A.vmId, state: "RUNNING" })).toBe(0);
    expect(m.value("qumra_vm_state", { vm_id: B.vmId, state: "RUNNING" })).toBe(1);
    expect(m.value("qumra_vms", { state: "PAUSED" })).toBe(1);
    expect(m.value("qumra_vms", { state: "RUNNING" })).toBe(1);
    expect(m.value("qumra_rpc_handled_total", { method: "PauseVm", code: "OK" })).toBe(1);
    await call(vms, vms.resumeVm, { vmId: A.vmId });
    await waitForState(vms, A.vmId, VmState.VM_STATE_RUNNING);
  });

  it("serves the same metrics on the --http listener's /metrics, beside its WebSockets", async () => {
    const m = await scrape(agent.http!);
    expect(m.value("qumra_vm_state", { vm_id: A.vmId, state: "RUNNING" })).toBe(1);
    expect((await httpGet(`http://${agent.http}/nope`)).status).toBe(404);
  });

  it("answers garbage with 400, other paths 404, other methods 405, and keeps serving past stalled and idle clients", async () => {
    const [host, port] = [agent.metrics!.split(":")[0], Number(agent.metrics!.split(":")[1])];
    const garbage = await new Promise<string>((resolve) => {
      const s = net.connect(port, host, () => s.write(Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0xff])));
      let got = "";
      s.on("data", (d) => (got += d.toString("latin1")));
      s.on("close", () => resolve(got));
      s.on("error", () => resolve(got));
    });
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
    expect((await httpGet(`http://${agent.metrics}/`)).status).toBe(404);
    const post = await httpGet(`http://${agent.metrics}/metrics`, "POST");
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
    const head = await httpGet(`http://${agent.metrics}/metrics`, "HEAD");
    expect([head.status, head.body]).toEqual([200, ""]);
    // Twenty clients that send half a request and stop, and twenty that connect and say nothing.
    const stalled = await Promise.all(
      Array.from({ length: 40 }, (_, i) => new Promise<net.Socket>((resolve) => {
        const s = net.connect(port, host, () => {
          if (i % 2 === 0) s.write("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ");
          resolve(s);
        });
        s.on("error", () => undefined);
      })),
    );
    try {
      const m = await scrape(agent.metrics!);
      expect(m.value("qumra_vms", { state: "RUNNING" })).toBe(2);
    } finally {
      for (const s of stalled) s.destroy();
    }
  });

  it("a stopped helper does not stall the scrape: its VM shows stats_up 0 and hung, the other VM is read", async () => {
    const { helperPid } = await call(vms, vms.getVm, { vmId: B.vmId });
    // It stays stopped until the delete below ends it: a SIGCONT would have the sandboxed helper killed by
    // seccomp as it resumes its interrupted poll (restart_syscall is not on native/sandbox.c's allowlist).
    process.kill(helperPid, "SIGSTOP");
    const m = await scrapeUntil(agent.metrics!, (s) => s.value("qumra_vm_helper_hung", { vm_id: B.vmId }) === 1, `${B.vmId} hung`);
    expect(m.value("qumra_vm_stats_up", { vm_id: B.vmId })).toBe(0);
    // What the agent knows without the helper is still there; what only the helper knows is not.
    expect(m.value("qumra_vm_state", { vm_id: B.vmId, state: "RUNNING" })).toBe(1);
    expect(m.value("qumra_vm_memory_bytes", { vm_id: B.vmId })).toBe(B.memory);
    expect(m.find("qumra_vm_vcpu_exits_total", { vm_id: B.vmId })).toEqual([]);
    expect(m.find("qumra_vm_kvm_vcpu_exits", { vm_id: B.vmId })).toEqual([]);
    expect(m.value("qumra_vm_stats_up", { vm_id: A.vmId })).toBe(1);
    expect(exitsOf(m, A.vmId)).toBeGreaterThan(0);
  });

  it("after a delete (of the stopped helper's VM), none of that VM's series remain; the other VM's stay", async () => {
    await call(vms, vms.deleteVm, { vmId: B.vmId, force: true });
    const m = await scrape(agent.metrics!);
    const left = m.samples.filter((s) => s.labels.vm_id === B.vmId || s.labels.name === B.name);
    expect(left, JSON.stringify(left.slice(0, 5))).toEqual([]);
    expect(m.value("qumra_vm_state", { vm_id: A.vmId, state: "RUNNING" })).toBe(1);
    expect(m.find("qumra_vm_kvm_vcpu_exits", { vm_id: A.vmId })).toHaveLength(1);
    expect(STATES.reduce((n, state) => n + m.value("qumra_vms", { state }), 0)).toBe(1);
    expect(m.value("qumra_rpc_handled_total", { method: "DeleteVm", code: "OK" })).toBe(1);
  });
});
