// The authorization step of one listener's server: names the caller, refuses what its role or VM limit
// does not allow (PERMISSION_DENIED naming identity, role and need), and writes the audit line of every
// mutating call and every refusal to disk before the reply's status leaves.
import * as grpc from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import { randomUUID } from "node:crypto";
import type { AuditEntry, AuditSink } from "../audit/audit-entry.js";
import type { Policy } from "../authz/policy.js";
import { roleCovers } from "../authz/roles.js";
import { formatSelector, selectorMatches } from "../authz/selector.js";
import type { Logger } from "../logger.js";
import { resolveCaller, SCOPE_METADATA_KEY, type Caller } from "./caller.js";
import { callerNames, type Listener } from "./identity.js";
import { RPC_ROLES, type RpcRule } from "./rpc-roles.js";

export interface AuthorizeOptions {
  listener: Listener;
  policy?: Policy;
  /** A VM's labels; undefined when there is no such VM (the handler then answers NOT_FOUND). */
  labelsOf: (vmId: string) => Readonly<Record<string, string>> | undefined;
  audit: AuditSink;
  logger: Logger;
}

/** The caller of a call on this listener (also used by the logging interceptor). */
export function callerOf(options: Pick<AuthorizeOptions, "listener" | "policy">, call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate }; getPeer(): string }): Caller {
  return resolveCaller(options.listener, callerNames(options.listener, call.getAuthContext().sslPeerCertificate, call.getPeer()), options.policy);
}

interface FirstMessage {
  vmId?: unknown;
  requestId?: unknown;
  spec?: { labels?: Record<string, string> };
}

/** Why `caller` may not make this call with this first message; undefined: it may. */
export function refusal(path: string, rule: RpcRule | undefined, caller: Caller, message: FirstMessage, labelsOf: AuthorizeOptions["labelsOf"]): string | undefined {
  if (!rule) return `${path} has no entry in the agent's role table, so nobody may call it`;
  if (rule.role === "public") return undefined;
  if (!caller.role) return `identity ${caller.identity} has no role (${caller.grantedBy}); ${path} needs ${rule.role}`;
  if (!roleCovers(caller.role, rule.role)) return `identity ${caller.identity} has role ${caller.role}; ${path} needs ${rule.role}`;
  if (!caller.vms) return undefined;
  const limit = `identity ${caller.identity} (${caller.role}) may only touch VMs with ${formatSelector(caller.vms)}`;
  switch (rule.scope) {
    case "filtered":
      return undefined;
    case "agent":
      return `${limit}; ${path} concerns the whole agent and needs a caller without a VM limit`;
    case "create": {
      const labels = message.spec?.labels ?? {};
      return selectorMatches(caller.vms, labels) ? undefined : `${limit}; the new VM's labels (${describeLabels(caller, labels)}) do not match`;
    }
    case "vm": {
      const vmId = typeof message.vmId === "string" ? message.vmId : "";
      const labels = vmId ? labelsOf(vmId) : undefined;
      // An unknown VM is left to the handler (NOT_FOUND); a known one must carry the labels.
      if (!labels || selectorMatches(caller.vms, labels)) return undefined;
      return `${limit}; VM ${vmId} has ${describeLabels(caller, labels)}`;
    }
  }
}

function describeLabels(caller: Caller, labels: Readonly<Record<string, string>>): string {
  return Object.keys(caller.vms ?? {})
    .map((k) => (k in labels ? `${k}=${labels[k]}` : `no ${k} label`))
    .join(", ");
}

export function authorizeInterceptor(options: AuthorizeOptions): grpc.ServerInterceptor {
  return (method, call) => {
    const rule = RPC_ROLES[method.path];
    const caller = callerOf(options, call);
    const peer = options.listener.kind === "unix" ? "unix" : call.getPeer();
    let requestId: string | undefined;
    let vmId: string | undefined;
    let checked = false;
    let refused = false;
    let auditedAtOpen = false;

    const entry = (code: string, message?: string): AuditEntry => ({
      identity: caller.identity,
      role: caller.role ?? "none",
      peer,
      method: method.path,
      ...(vmId ? { vm_id: vmId } : {}),
      request_id: requestId ?? (requestId = randomUUID()),
      code,
      ...(message ? { message } : {}),
    });
    const auditFailed = (err: unknown): grpc.StatusObject => {
      options.logger.error({ err, method: method.path, identity: caller.identity }, "audit trail not written");
      return { code: grpc.status.UNAVAILABLE, details: `the audit trail could not be written (${(err as Error).message}); the agent answers no change it cannot record`, metadata: new grpc.Metadata() };
    };

    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const sent = metadata.get("x-request-id")[0];
        if (sent !== undefined && String(sent).length <= 128) requestId = String(sent);
        // Only this step says what a caller is limited to.
        metadata.remove(SCOPE_METADATA_KEY);
        // Binary metadata: label values from the policy file may be any UTF-8.
        if (caller.vms) metadata.set(SCOPE_METADATA_KEY, Buffer.from(JSON.stringify(caller.vms), "utf8"));
        next(metadata);
      })
      .withOnReceiveMessage((message: FirstMessage, next) => {
        if (refused) return;
        if (checked) return next(message);
        checked = true;
        if (typeof message?.vmId === "string" && message.vmId) vmId = message.vmId;
        if (!requestId && typeof message?.requestId === "string" && message.requestId) requestId = message.requestId;
        const why = refusal(method.path, rule, caller, message ?? {}, options.labelsOf);
        if (why) {
          refused = true;
          intercepting.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: why, metadata: new grpc.Metadata() });
          return;
        }
        // A stream that changes things is recorded when it opens, before the handler sees it.
        if (rule.mutates && (method.requestStream || method.responseStream)) {
          auditedAtOpen = true;
          options.audit.record(entry("OK", "stream opened")).then(
            () => next(message),
            (err) => {
              refused = true;
              intercepting.sendStatus(auditFailed(err));
            },
          );
          return;
        }
        next(message);
      })
      .withOnReceiveHalfClose((next) => {
        if (!refused) next();
      })
      .build();

    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        const audited = refused || (rule?.mutates === true && !auditedAtOpen && checked);
        if (!audited) return next(status);
        options.audit.record(entry(grpc.status[status.code] ?? String(status.code), status.code === grpc.status.OK ? undefined : status.details)).then(
          () => next(status),
          // A refused or failed call changed nothing, so its own answer stands (with a note); only a
          // change that cannot be recorded is answered UNAVAILABLE.
          (err) => next(status.code === grpc.status.OK ? auditFailed(err) : { ...status, details: `${status.details} (not recorded in the audit trail: ${(err as Error).message})` }),
        );
      })
      .build();
    const intercepting = new grpc.ServerInterceptingCall(call, responder);
    return intercepting;
  };
}
