// A caller's identity and role (and VM limit), from its listener, its names and the --authz policy.
import type * as grpc from "@grpc/grpc-js";
import type { Policy } from "../authz/policy.js";
import { lowerRole, type Role } from "../authz/roles.js";
import type { Selector } from "../authz/selector.js";
import type { Listener } from "./identity.js";

export interface Caller {
  /** The name that decided the role (the matching rule's), else the caller's first name, else "anonymous". */
  identity: string;
  /** Undefined: no role at all (every call but the public ones is refused). */
  role?: Role;
  /** Only VMs with these labels; undefined: every VM. */
  vms?: Selector;
  /** Why it has that role, for refusals: "policy rule 2", "the read-write socket", … */
  grantedBy: string;
}

/**
 * First matching rule wins. Without a match: the read-write socket is admin (its file mode is its
 * authentication), the read-only socket viewer, a TCP client admin only when there is no policy.
 * The read-only socket is capped at viewer whatever a rule says.
 */
export function resolveCaller(listener: Listener, names: string[], policy: Policy | undefined): Caller {
  const identity = names[0] ?? "anonymous";
  let caller: Caller | undefined;
  if (policy) {
    for (const [i, rule] of policy.rules.entries()) {
      const name = names.find((n) => rule.match(n));
      if (name) {
        caller = { identity: name, role: rule.role, vms: rule.vms, grantedBy: `rule ${i} (${rule.identity}) of ${policy.source}` };
        break;
      }
    }
  }
  if (!caller) {
    if (names.length === 0) caller = { identity, grantedBy: "no verified client certificate" };
    else if (listener.kind === "unix") caller = { identity, role: listener.readOnly ? "viewer" : "admin", grantedBy: listener.readOnly ? "the read-only socket" : "the read-write socket" };
    else if (!policy) caller = { identity, role: "admin", grantedBy: "no --authz policy (every authenticated client is admin)" };
    else caller = { identity, grantedBy: `no rule of ${policy.source} matches it` };
  }
  if (listener.kind === "unix" && listener.readOnly && caller.role) caller.role = lowerRole(caller.role, "viewer");
  return caller;
}

/** Metadata key through which the authorization step tells handlers the caller's VM limit. */
export const SCOPE_METADATA_KEY = "x-qumra-internal-vm-scope-bin";

/** The caller's VM limit as the authorization step recorded it on the call; undefined: every VM. */
export function vmScopeOf(call: { metadata: grpc.Metadata }): Selector | undefined {
  const value = call.metadata.get(SCOPE_METADATA_KEY)[0];
  return value === undefined ? undefined : (JSON.parse(Buffer.from(value).toString("utf8")) as Selector);
}
