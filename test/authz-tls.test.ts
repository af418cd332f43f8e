// Per-call roles over mutual TLS, with certificates made by openssl at test time and a YAML policy:
// a viewer cannot stop VMs, an operator limited to tenant=a sees and touches only tenant-a VMs, a SPIFFE
// ID is matched by a glob, an admin does everything, and no certificate means no connection at all.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, VmState } from "../agent/src/gen/qumra/v1/vm.js";
import { HostServiceClient } from "../agent/src/gen/qumra/v1/host.js";
import { startAgent, cleanup, tempDir, type RunningAgent } from "./helpers/agent.js";
import { issueClient, makePki, type TestPki } from "./helpers/pki.js";
import { call, callError, collect } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { createVm, demoSpec, watch } from "./helpers/vm.js";

const POLICY = `# who may do what on this test agent
rules:
  - identity: CN=monitor
    role: viewer
  - identity: CN=ctl-a
    role: operator
    vms: tenant=a
  - identity: "URI:spiffe://qumra.test/ctl/*"
    role: operator
  - identity: CN=root-admin
    role: admin
`;

describe.skipIf(!hasKvm)("authorization over mutual TLS on real KVM", () => {
  let pki: TestPki;
  let agent: RunningAgent;
  const clients: grpc.Client[] = [];
  const vmClient = (cert?: { cert: string; key: string }) => {
    const c = new VmServiceClient(agent.address!, grpc.credentials.createSsl(readFileSync(pki.caCert), cert ? readFileSync(cert.key) : null, cert ? readFileSync(cert.cert) : null));
    clients.push(c);
    return c;
  };
  let admin: VmServiceClient;
  let viewer: VmServiceClient;
  let tenantA: VmServiceClient;
  let spiffe: VmServiceClient;

  beforeAll(async () => {
    pki = makePki(tempDir("authz-pki"));
    const policy = path.join(pki.dir, "policy.yaml");
    writeFileSync(policy, POLICY);
    agent = await startAgent(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-ca", pki.caCert, "--authz", policy, "--display-workers", "0"]);
    admin = vmClient(issueClient(pki, "admin", "root-admin"));
    viewer = vmClient(issueClient(pki, "monitor", "monitor"));
    tenantA = vmClient(issueClient(pki, "ctl-a", "ctl-a"));
    spiffe = vmClient(issueClient(pki, "robot", "robot-7", "spiffe://qumra.test/ctl/eu-1"));
    await createVm(admin, "a1", demoSpec("a1", { labels: { tenant: "a" } }));
    await createVm(admin, "b1", demoSpec("b1", { labels: { tenant: "b" } }));
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await agent?.stop();
    cleanup(pki.dir, agent.stateDir, agent.runtimeDir);
  });

  it("a viewer certificate lists VMs but is refused StopVm, naming its identity, role and the role needed", async () => {
    const list = await call(viewer, viewer.listVms, { state: 0, labelSelector: {} });
    expect(list.vms.map((v) => v.vmId)).toEqual(["a1", "b1"]);
    const err = await callError(viewer, viewer.stopVm, { vmId: "a1", force: true, timeoutMs: 0 });
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe("identity CN=monitor has role viewer; /qumra.v1.VmService/StopVm needs operator");
  });

  it("an operator limited to tenant=a sees only tenant-a VMs and cannot stop (or even read) a tenant-b VM", async () => {
    const list = await call(tenantA, tenantA.listVms, { state: 0, labelSelector: {} });
    expect(list.vms.map((v) => v.vmId)).toEqual(["a1"]);
    const stop = await callError(tenantA, tenantA.stopVm, { vmId: "b1", force: true, timeoutMs: 0 });
    expect(stop.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(stop.details).toBe("identity CN=ctl-a (operator) may only touch VMs with tenant=a; VM b1 has tenant=b");
    expect((await callError(tenantA, tenantA.getVm, { vmId: "b1" })).code).toBe(grpc.status.PERMISSION_DENIED);
    // The host's VM counts are of its VMs too.
    const tenantHost = new HostServiceClient(agent.address!, grpc.credentials.createSsl(readFileSync(pki.caCert), readFileSync(path.join(pki.dir, "ctl-a.key")), readFileSync(path.join(pki.dir, "ctl-a.crt"))));
    clients.push(tenantHost);
    const [stats] = await collect(tenantHost.watchHostStats({ intervalMs: 100, count: 1 }));
    expect([stats.vmsTotal, stats.vmsRunning]).toEqual([1, 1]);
    // WatchVms shows it tenant a's VMs only: neither b1's snapshot nor b1's events.
    const watching = watch(tenantA, {}, (e) => e.some((x) => x.vmId === "a1" && x.state === VmState.VM_STATE_PAUSED), 10_000);
    await call(admin, admin.pauseVm, { vmId: "b1" });
    await call(admin, admin.pauseVm, { vmId: "a1" });
    const events = await watching;
    expect(new Set(events.map((e) => e.vmId))).toEqual(new Set(["a1"]));
    await call(admin, admin.resumeVm, { vmId: "a1" });
    await call(admin, admin.resumeVm, { vmId: "b1" });
    // Creating is admin's, whatever the labels.
    expect((await callError(tenantA, tenantA.createVm, { vmId: "a2", requestId: "r-a2", spec: demoSpec("a2", { labels: { tenant: "a" } }) })).details).toMatch(/has role operator; \/qumra\.v1\.VmService\/CreateVm needs admin/);
    // Its own VM it may pause, resume and stop.
    expect((await call(tenantA, tenantA.pauseVm, { vmId: "a1" })).state).toBe(VmState.VM_STATE_PAUSED);
    expect((await call(tenantA, tenantA.resumeVm, { vmId: "a1" })).state).toBe(VmState.VM_STATE_RUNNING);
    const stopped = await call(tenantA, tenantA.stopVm, { vmId: "a1", force: true, timeoutMs: 0 });
    expect(stopped.state).toBe(VmState.VM_STATE_STOPPED);
  });

  it("a SPIFFE ID in the certificate's SAN URI is matched by a glob", async () => {
    const paused = await call(spiffe, spiffe.pauseVm, { vmId: "b1" });
    expect(paused.state).toBe(VmState.VM_STATE_PAUSED);
    await call(spiffe, spiffe.resumeVm, { vmId: "b1" });
    const err = await callError(spiffe, spiffe.deleteVm, { vmId: "b1", force: true });
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe("identity URI:spiffe://qumra.test/ctl/eu-1 has role operator; /qumra.v1.VmService/DeleteVm needs admin");
  });

  it("an admin does everything: guest memory, stop, delete", async () => {
    const mem = await call(admin, admin.readMemory, { vmId: "b1", address: 0x100000n, length: 16 });
    expect(mem.data.length).toBe(16);
    await call(admin, admin.stopVm, { vmId: "b1", force: true, timeoutMs: 0 });
    await call(admin, admin.deleteVm, { vmId: "b1", force: true });
    await call(admin, admin.deleteVm, { vmId: "a1", force: true });
    expect((await call(admin, admin.listVms, { state: 0, labelSelector: {} })).vms).toEqual([]);
  });

  it("the audit trail names each certificate's identity", () => {
    const lines = readFileSync(path.join(agent.stateDir, "audit.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { identity: string; method: string; code: string; vm_id?: string });
    expect(lines).toContainEqual(expect.objectContaining({ identity: "CN=monitor", method: "/qumra.v1.VmService/StopVm", code: "PERMISSION_DENIED", vm_id: "a1" }));
    expect(lines).toContainEqual(expect.objectContaining({ identity: "CN=ctl-a", method: "/qumra.v1.VmService/StopVm", code: "OK", vm_id: "a1" }));
    expect(lines).toContainEqual(expect.objectContaining({ identity: "URI:spiffe://qumra.test/ctl/eu-1", method: "/qumra.v1.VmService/PauseVm", code: "OK" }));
    expect(lines).toContainEqual(expect.objectContaining({ identity: "CN=root-admin", method: "/qumra.v1.VmService/DeleteVm", code: "OK", vm_id: "b1" }));
  });

  it("a client without a certificate is refused at the handshake", async () => {
    const host = new HostServiceClient(agent.address!, grpc.credentials.createSsl(readFileSync(pki.caCert)));
    const err = await call(host, host.getHost, {}, 5000).then(() => undefined, (e: grpc.ServiceError) => e);
    host.close();
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(agent.logs()).not.toMatch(/"method":"\/qumra\.v1\.HostService\/GetHost"/);
  });
});

describe("TLS without a CA", () => {
  it("the agent refuses to start with --listen and --tls-cert but no --tls-ca", async () => {
    const pki = makePki(tempDir("authz-noca"));
    const err = await startAgent(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey]).then(() => undefined, (e: Error) => e);
    cleanup(pki.dir);
    expect(err?.message).toMatch(/exited with 2 before listening/);
    expect(err?.message).toMatch(/with --tls-cert but no --tls-ca: any client without a certificate could control this agent; give --tls-ca/);
  });
});
