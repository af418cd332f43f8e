// Every RPC the agent serves and the role it needs: the one table authorization reads. An RPC missing
// here is refused (test/authz-roles.test.ts fails when a service method has no entry).
import type { Role } from "../authz/roles.js";

/**
 * How an RPC relates to VMs, for callers limited to VMs with some labels:
 * - "vm": the request's (first message's) vm_id names the VM, whose labels must match;
 * - "create": the new VM's spec.labels must match;
 * - "filtered": the handler shows only the VMs the caller may see (lists, watches, host counts);
 * - "agent": concerns the whole agent, so only callers without a VM limit may call it.
 */
export type VmScope = "vm" | "create" | "filtered" | "agent";

export interface RpcRule {
  /** "public": anyone connected, with no identity needed (health checks, reflection). */
  role: Role | "public";
  /** Changes something: every call is one line of the audit trail. */
  mutates: boolean;
  scope: VmScope;
}

const viewer = (scope: VmScope): RpcRule => ({ role: "viewer", mutates: false, scope });
const operator = (scope: VmScope, mutates = true): RpcRule => ({ role: "operator", mutates, scope });
const admin = (scope: VmScope, mutates = true): RpcRule => ({ role: "admin", mutates, scope });
const PUBLIC: RpcRule = { role: "public", mutates: false, scope: "agent" };

export const RPC_ROLES: Readonly<Record<string, RpcRule>> = {
  "/qumra.v1.HostService/GetHost": viewer("filtered"),
  "/qumra.v1.HostService/WatchHostStats": viewer("filtered"),

  "/qumra.v1.VmService/GetVm": viewer("vm"),
  "/qumra.v1.VmService/ListVms": viewer("filtered"),
  "/qumra.v1.VmService/WatchVms": viewer("filtered"),
  "/qumra.v1.VmService/GetVmStats": viewer("vm"),
  "/qumra.v1.VmService/StartVm": operator("vm"),
  "/qumra.v1.VmService/PauseVm": operator("vm"),
  "/qumra.v1.VmService/ResumeVm": operator("vm"),
  "/qumra.v1.VmService/StopVm": operator("vm"),
  "/qumra.v1.VmService/AttachConsole": operator("vm"),
  "/qumra.v1.VmService/SnapshotVm": operator("vm"),
  // The restored VM does not exist yet and takes the snapshot's labels: only callers without a VM limit.
  "/qumra.v1.VmService/RestoreVm": operator("agent"),
  // Snapshots outlive their VMs and show their specs: like RestoreVm, for callers without a VM limit.
  "/qumra.v1.VmService/ListSnapshots": viewer("agent"),
  "/qumra.v1.VmService/DeleteSnapshot": operator("agent"),
  "/qumra.v1.VmService/MigrateVm": operator("vm"),
  "/qumra.v1.VmService/CancelMigration": operator("vm"),
  // Makes a VM of any labels from what another agent sends: only callers without a VM limit, as admin.
  "/qumra.v1.VmService/ReceiveMigration": admin("agent"),
  "/qumra.v1.VmService/CreateVm": admin("create"),
  "/qumra.v1.VmService/DeleteVm": admin("vm"),
  "/qumra.v1.VmService/GetVcpuState": admin("vm", false),
  "/qumra.v1.VmService/SetVcpuState": admin("vm"),
  "/qumra.v1.VmService/ReadMemory": admin("vm", false),
  "/qumra.v1.VmService/WriteMemory": admin("vm"),

  "/qumra.v1.DisplayService/StreamDisplay": viewer("vm"),
  "/qumra.v1.DisplayService/Screenshot": viewer("vm"),
  "/qumra.v1.DisplayService/SendInput": operator("vm"),
  "/qumra.v1.DisplayService/SetDisplayTicket": operator("vm"),
  // Its answer carries the ticket (the .vv file's password).
  "/qumra.v1.DisplayService/GetDisplayConnection": operator("vm", false),

  // The trail names every tenant's calls.
  "/qumra.v1.AuditService/ReadAudit": admin("agent", false),

  "/grpc.health.v1.Health/Check": PUBLIC,
  "/grpc.health.v1.Health/Watch": PUBLIC,
  "/grpc.health.v1.Health/List": PUBLIC,
  "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": PUBLIC,
  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": PUBLIC,
};
