// The audit trail wired into the API: one fsynced line per mutating call and per refusal, in order,
// written before the reply — so a kill -9 right after the last reply loses none — and `qumra audit`
// reading it back on the read-write socket (and refused on the read-only one).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import path from "node:path";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, runCli, type RunningAgent } from "./helpers/agent.js";
import type { AuditEntry } from "../agent/src/audit/audit-entry.js";
import { hasKvm } from "./helpers/kvm.js";
import { demoSpec } from "./helpers/vm.js";

type Unary<Req, Res> = (request: Req, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, callback: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall;

/** A call with an x-request-id; resolves with the status code name it ended with. */
function callWithId<Req, Res>(client: grpc.Client, method: Unary<Req, Res>, request: Req, requestId: string): Promise<string> {
  const metadata = new grpc.Metadata();
  metadata.set("x-request-id", requestId);
  return new Promise((resolve) => method.call(client, request, metadata, { deadline: Date.now() + 20_000 }, (err) => resolve(grpc.status[err?.code ?? grpc.status.OK])));
}

/** One line of audit.log: the entry the authorization step recorded, with the time the log added. */
type Line = AuditEntry & { time: string };

describe.skipIf(!hasKvm)("the audit trail of a real agent on real KVM", () => {
  let agent: RunningAgent;
  let restarted: RunningAgent | undefined;
  let rw: VmServiceClient;
  let ro: VmServiceClient;

  beforeAll(async () => {
    agent = await startAgent(["--display-workers", "0"]);
    rw = new VmServiceClient(`unix:${agent.socket}`, grpc.credentials.createInsecure());
    ro = new VmServiceClient(`unix:${agent.readOnlySocket}`, grpc.credentials.createInsecure());
  }, 60_000);

  afterAll(async () => {
    rw?.close();
    ro?.close();
    await agent?.stop();
    await restarted?.stop();
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("holds one line per mutating call and per refusal, in order, all on disk after kill -9", async () => {
    const codes = [
      await callWithId(rw, rw.createVm, { vmId: "t1", requestId: "", spec: demoSpec("t1") }, "req-1"),
      await callWithId(rw, rw.getVm, { vmId: "t1" }, "read-1"), // a read: not audited
      await callWithId(rw, rw.startVm, { vmId: "t1" }, "req-2"),
      await callWithId(rw, rw.startVm, { vmId: "t1" }, "req-3"), // fails: already running
      await callWithId(ro, ro.stopVm, { vmId: "t1", force: true, timeoutMs: 0 }, "req-4"), // refused
      await callWithId(rw, rw.listVms, { state: 0, labelSelector: {} }, "read-2"),
      await callWithId(rw, rw.stopVm, { vmId: "t1", force: true, timeoutMs: 0 }, "req-5"),
      await callWithId(rw, rw.deleteVm, { vmId: "t1", force: true }, "req-6"),
    ];
    // The moment the last reply is in, the agent dies without any chance to flush.
    agent.process.kill("SIGKILL");
    expect(codes).toEqual(["OK", "OK", "OK", "FAILED_PRECONDITION", "PERMISSION_DENIED", "OK", "OK", "OK"]);
    await agent.stop();

    const lines = readFileSync(path.join(agent.stateDir, "audit.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Line);
    expect(lines.map((l) => [l.identity, l.role, l.method.split("/").pop(), l.vm_id, l.request_id, l.code])).toEqual([
      ["unix:qumra.sock", "admin", "CreateVm", "t1", "req-1", "OK"],
      ["unix:qumra.sock", "admin", "StartVm", "t1", "req-2", "OK"],
      ["unix:qumra.sock", "admin", "StartVm", "t1", "req-3", "FAILED_PRECONDITION"],
      ["unix:qumra-ro.sock", "viewer", "StopVm", "t1", "req-4", "PERMISSION_DENIED"],
      ["unix:qumra.sock", "admin", "StopVm", "t1", "req-5", "OK"],
      ["unix:qumra.sock", "admin", "DeleteVm", "t1", "req-6", "OK"],
    ]);
    expect(lines.every((l) => l.peer === "unix" && !Number.isNaN(Date.parse(l.time)))).toBe(true);
    expect([...lines].sort((a, b) => a.time.localeCompare(b.time))).toEqual(lines);
  }, 60_000);

  it("qumra audit --vm ID --json reads it back on the read-write socket and is refused on the read-only one", async () => {
    // A new agent on the same dirs takes over the stale sockets the killed one left.
    restarted = await startAgent(["--display-workers", "0"], { stateDir: agent.stateDir, runtimeDir: agent.runtimeDir });
    const ok = await runCli(["--host", `unix:${restarted.socket}`, "--json", "audit", "--vm", "t1"]);
    expect(ok.code, ok.stderr).toBe(0);
    const records = ok.stdout.trim().split("\n").map((l) => JSON.parse(l) as { method: string; vmId: string; requestId: string });
    expect(records.map((r) => r.requestId)).toEqual(["req-1", "req-2", "req-3", "req-4", "req-5", "req-6"]);
    expect(records.every((r) => r.vmId === "t1")).toBe(true);

    const refused = await runCli(["--host", `unix:${restarted.readOnlySocket}`, "--json", "audit", "--vm", "t1"]);
    expect(refused.code).not.toBe(0);
    // With --json the error is a JSON object on stdout.
    expect(refused.stdout + refused.stderr).toContain("identity unix:qumra-ro.sock has role viewer; /qumra.v1.AuditService/ReadAudit needs admin");
    expect(refused.stdout + refused.stderr).toContain("PERMISSION_DENIED");
  }, 60_000);
});
