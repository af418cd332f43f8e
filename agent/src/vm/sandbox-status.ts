// The sandbox a helper reports in its STATUS/HELLO reply ("sandbox", native/sandbox.c), as the
// agent's domain type. Helpers built before the sandbox send none: that reads as undefined.
import { HelperError } from "./helper-errors.js";

/** What confines a VM's helper (mirrors qumra.v1.VmSandbox). */
export interface VmSandbox {
  /** "filter" (seccomp-bpf allowlist, kill on anything else) or "disabled". */
  seccomp: "filter" | "disabled";
  uid: number;
  gid: number;
  noNewPrivs: boolean;
  mountNamespace: boolean;
  /** What was skipped and why ("" when everything is in force). */
  note: string;
}

/** The `sandbox` member of a STATUS reply; undefined when the helper sent none. */
export function sandboxFromStatus(value: unknown): VmSandbox | undefined {
  if (value === undefined) return undefined;
  const bad = (why: string) => new HelperError("PROTOCOL", `STATUS reply's sandbox ${why}`);
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad("is not an object");
  const o = value as Record<string, unknown>;
  if (o.seccomp !== "filter" && o.seccomp !== "disabled") throw bad(`has an unknown seccomp mode ${JSON.stringify(o.seccomp)}`);
  const id = (k: "uid" | "gid"): number => {
    const v = o[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw bad(`has no ${k}`);
    return v;
  };
  const flag = (k: "noNewPrivs" | "mountNamespace"): boolean => {
    if (typeof o[k] !== "boolean") throw bad(`has no boolean ${k}`);
    return o[k] as boolean;
  };
  if (typeof o.note !== "string") throw bad("has no note");
  return { seccomp: o.seccomp, uid: id("uid"), gid: id("gid"), noNewPrivs: flag("noNewPrivs"), mountNamespace: flag("mountNamespace"), note: o.note };
}

/** One line for logs and the CLI: "seccomp filter, uid 999 gid 999, no_new_privs, mount namespace". */
export function describeSandbox(s: VmSandbox): string {
  const parts = [`seccomp ${s.seccomp}`, `uid ${s.uid} gid ${s.gid}`];
  if (s.noNewPrivs) parts.push("no_new_privs");
  parts.push(s.mountNamespace ? "mount namespace" : "no mount namespace");
  return parts.join(", ") + (s.note ? ` (${s.note})` : "");
}
