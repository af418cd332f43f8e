// The role table covers every RPC the agent serves; policy files are validated with messages that point
// at the bad entry; callers get the roles the documentation promises.
import { describe, it, expect } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { HostServiceService } from "../agent/src/gen/qumra/v1/host.js";
import { VmServiceService } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceService } from "../agent/src/gen/qumra/v1/display.js";
import { AuditServiceService } from "../agent/src/gen/qumra/v1/audit.js";
import { RPC_ROLES } from "../agent/src/api/rpc-roles.js";
import { parsePolicy, PolicyError } from "../agent/src/authz/policy.js";
import { resolveCaller } from "../agent/src/api/caller.js";
import { refusal } from "../agent/src/api/authorize.js";
import { callerNames, type Listener } from "../agent/src/api/identity.js";

const SERVICES: Record<string, grpc.ServiceDefinition> = {
  HostService: HostServiceService,
  VmService: VmServiceService,
  DisplayService: DisplayServiceService,
  AuditService: AuditServiceService,
  Health: healthService as unknown as grpc.ServiceDefinition,
};
const REFLECTION = ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"];

const rw: Listener = { kind: "unix", path: "/run/qumra/qumra.sock", readOnly: false };
const ro: Listener = { kind: "unix", path: "/run/qumra/qumra-ro.sock", readOnly: true };
const tls: Listener = { kind: "tls", address: "0.0.0.0:50051" };

describe("the RPC role table", () => {
  const served = Object.values(SERVICES).flatMap((d) => Object.values(d).map((m) => m.path));

  it("has an entry for every method of every service the agent serves", () => {
    const missing = served.filter((p) => !RPC_ROLES[p]);
    expect(missing, `RPCs without a role in agent/src/api/rpc-roles.ts: ${missing.join(", ")}`).toEqual([]);
    for (const [name, d] of Object.entries(SERVICES)) expect(Object.keys(d).length, name).toBeGreaterThan(0);
  });

  it("names no RPC that does not exist", () => {
    const known = new Set([...served, ...REFLECTION]);
    expect(Object.keys(RPC_ROLES).filter((p) => !known.has(p))).toEqual([]);
  });

  it("gives guest memory, registers, create and delete to admin only; health is public", () => {
    for (const m of ["ReadMemory", "WriteMemory", "GetVcpuState", "SetVcpuState", "CreateVm", "DeleteVm"]) expect(RPC_ROLES[`/qumra.v1.VmService/${m}`].role, m).toBe("admin");
    for (const m of ["StartVm", "StopVm", "PauseVm", "ResumeVm", "AttachConsole"]) expect(RPC_ROLES[`/qumra.v1.VmService/${m}`].role, m).toBe("operator");
    for (const p of ["/qumra.v1.VmService/ListVms", "/qumra.v1.DisplayService/Screenshot", "/qumra.v1.DisplayService/StreamDisplay", "/qumra.v1.HostService/GetHost"]) expect(RPC_ROLES[p].role, p).toBe("viewer");
    expect(RPC_ROLES["/grpc.health.v1.Health/Check"].role).toBe("public");
    // Every mutating RPC is audited; reads are not.
    expect(RPC_ROLES["/qumra.v1.VmService/StopVm"].mutates).toBe(true);
    expect(RPC_ROLES["/qumra.v1.VmService/ListVms"].mutates).toBe(false);
  });
});

describe("policy files", () => {
  const good = `rules:
  - identity: CN=ctl-a
    role: operator
    vms: tenant=a
  - identity: "URI:spiffe://qumra.test/ctl/*"
    role: admin
  - identity: CN=*
    role: viewer
`;

  it("reads YAML and JSON rules", () => {
    const yaml = parsePolicy(good, "policy.yaml");
    expect(yaml.rules.map((r) => [r.identity, r.role, r.vms])).toEqual([
      ["CN=ctl-a", "operator", { tenant: "a" }],
      ["URI:spiffe://qumra.test/ctl/*", "admin", undefined],
      ["CN=*", "viewer", undefined],
    ]);
    const json = parsePolicy(JSON.stringify({ rules: [{ identity: "CN=x", role: "admin", vms: "tenant=b,env=prod" }] }), "p.json");
    expect(json.rules[0].vms).toEqual({ tenant: "b", env: "prod" });
  });

  it.each([
    ["p.yaml", "rules: [{ identity: CN=x, role: root }]", /p\.yaml: rules\[0\] \(CN=x\): role "root" is not one of viewer, operator, admin/],
    ["p.yaml", "rules:\n  - identity: CN=x\n    role: viewer\n  - role: admin", /rules\[1\]: identity must be a non-empty string/],
    ["p.yaml", "rules: [{ identity: CN=x, role: viewer, vms: tenant }]", /rules\[0\] \(CN=x\): vms: "tenant" is not a label pair: expected key=value/],
    ["p.yaml", "rules: [{ identity: CN=x, role: viewer, who: me }]", /rules\[0\]: unknown field "who"/],
    ["p.yaml", "identity: CN=x", /expected an object with a "rules" list/],
    ["p.json", "{ rules: ", /p\.json: not valid JSON/],
    ["p.yaml", "rules: [", /p\.yaml: not valid YAML/],
  ])("rejects a bad %s: %j", (source, text, message) => {
    expect(() => parsePolicy(text, source)).toThrow(PolicyError);
    expect(() => parsePolicy(text, source)).toThrow(message);
  });

  it("first matching rule wins, over any of the caller's names; globs match across '/'", () => {
    const policy = parsePolicy(good, "policy.yaml");
    expect(resolveCaller(tls, ["CN=ctl-a"], policy)).toMatchObject({ identity: "CN=ctl-a", role: "operator", vms: { tenant: "a" } });
    expect(resolveCaller(tls, ["CN=robot", "URI:spiffe://qumra.test/ctl/eu/1"], policy)).toMatchObject({ identity: "URI:spiffe://qumra.test/ctl/eu/1", role: "admin" });
    expect(resolveCaller(tls, ["CN=someone"], policy)).toMatchObject({ identity: "CN=someone", role: "viewer" });
    expect(resolveCaller(tls, ["URI:spiffe://elsewhere/x"], policy).role).toBeUndefined();
  });

  it("defaults: read-write socket admin, read-only socket viewer (even when a rule says admin), mTLS admin without a policy", () => {
    const everyone = parsePolicy("rules: [{ identity: '*', role: admin }]", "all.yaml");
    expect(resolveCaller(rw, callerNames(rw, undefined, ""), undefined)).toMatchObject({ identity: "unix:qumra.sock", role: "admin" });
    expect(resolveCaller(ro, callerNames(ro, undefined, ""), undefined)).toMatchObject({ identity: "unix:qumra-ro.sock", role: "viewer" });
    expect(resolveCaller(ro, callerNames(ro, undefined, ""), everyone).role).toBe("viewer");
    expect(resolveCaller(tls, ["CN=any"], undefined).role).toBe("admin");
    expect(resolveCaller(tls, [], undefined).role).toBeUndefined();
  });

  it("refusals name the identity, its role and the role needed, or the VM limit", () => {
    const path = "/qumra.v1.VmService/StopVm";
    const known: Record<string, Record<string, string>> = { a1: { tenant: "a" }, b1: { tenant: "b" }, n1: {} };
    const labels = (id: string) => known[id];
    const viewer = resolveCaller(tls, ["CN=mon"], parsePolicy("rules: [{ identity: CN=mon, role: viewer }]", "p.yaml"));
    expect(refusal(path, RPC_ROLES[path], viewer, { vmId: "a1" }, labels)).toBe(`identity CN=mon has role viewer; ${path} needs operator`);
    const op = resolveCaller(tls, ["CN=ctl-a"], parsePolicy(good, "p.yaml"));
    expect(refusal(path, RPC_ROLES[path], op, { vmId: "a1" }, labels)).toBeUndefined();
    expect(refusal(path, RPC_ROLES[path], op, { vmId: "b1" }, labels)).toBe("identity CN=ctl-a (operator) may only touch VMs with tenant=a; VM b1 has tenant=b");
    expect(refusal(path, RPC_ROLES[path], op, { vmId: "n1" }, labels)).toMatch(/VM n1 has no tenant label/);
    expect(refusal("/qumra.v1.AuditService/ReadAudit", RPC_ROLES["/qumra.v1.AuditService/ReadAudit"], { ...op, role: "admin" }, {}, labels)).toMatch(/concerns the whole agent/);
    expect(refusal("/x.Y/Z", undefined, op, {}, labels)).toMatch(/no entry in the agent's role table/);
  });
});
