// The --authz policy file (JSON or YAML): rules mapping identities (exact or glob) to a role, optionally
// limited to VMs whose labels match a selector. The first rule that matches one of the caller's names wins.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { isRole, ROLES, type Role } from "./roles.js";
import { parseSelector, type Selector } from "./selector.js";

export interface PolicyRule {
  /** The identity as written: "CN=ctl-a", "CN=ctl-*", "URI:spiffe://example.org/*", "unix:qumra.sock". */
  identity: string;
  role: Role;
  /** Only VMs with these labels; undefined: every VM. */
  vms?: Selector;
  match: (name: string) => boolean;
}

export interface Policy {
  /** Where it came from, for messages. */
  source: string;
  rules: PolicyRule[];
}

export class PolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PolicyError";
  }
}

/** Reads and validates a policy file; throws PolicyError pointing at the bad entry. */
export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new PolicyError(`--authz ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parsePolicy(text, file);
}

export function parsePolicy(text: string, source: string): Policy {
  let doc: unknown;
  try {
    doc = /\.json$/i.test(source) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new PolicyError(`${source}: not valid ${/\.json$/i.test(source) ? "JSON" : "YAML"}: ${(err as Error).message}`);
  }
  const rules = (doc as { rules?: unknown } | null)?.rules;
  if (!doc || typeof doc !== "object" || !Array.isArray(rules)) {
    throw new PolicyError(`${source}: expected an object with a "rules" list, e.g. rules: [{ identity: "CN=ctl-a", role: operator, vms: "tenant=a" }]`);
  }
  const known = new Set(["identity", "role", "vms"]);
  return {
    source,
    rules: rules.map((raw: unknown, i): PolicyRule => {
      const where = `${source}: rules[${i}]`;
      if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new PolicyError(`${where}: expected an object with identity and role`);
      const r = raw as Record<string, unknown>;
      for (const key of Object.keys(r)) if (!known.has(key)) throw new PolicyError(`${where}: unknown field "${key}" (allowed: identity, role, vms)`);
      if (typeof r.identity !== "string" || r.identity.trim() === "") throw new PolicyError(`${where}: identity must be a non-empty string, e.g. "CN=ctl-a" or "URI:spiffe://example.org/*"`);
      if (!isRole(r.role)) throw new PolicyError(`${where} (${r.identity}): role ${JSON.stringify(r.role)} is not one of ${ROLES.join(", ")}`);
      let vms: Selector | undefined;
      if (r.vms !== undefined) {
        if (typeof r.vms !== "string") throw new PolicyError(`${where} (${r.identity}): vms must be a selector string like "tenant=a"`);
        try {
          vms = parseSelector(r.vms);
        } catch (err) {
          throw new PolicyError(`${where} (${r.identity}): vms: ${(err as Error).message}`);
        }
      }
      return { identity: r.identity, role: r.role, vms, match: globMatcher(r.identity) };
    }),
  };
}

/** "*" matches any run of characters (including "/"), everything else literally. */
function globMatcher(pattern: string): (name: string) => boolean {
  if (!pattern.includes("*")) return (name) => name === pattern;
  const re = new RegExp(`^${pattern.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
  return (name) => re.test(name);
}
