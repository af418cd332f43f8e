// The unprivileged identity helpers run as (--vmm-user). Only an agent running as root can give
// helpers another uid; it creates the system user when it is missing. A non-root agent's helpers
// keep its own uid (the helper's sandbox still applies: seccomp, no_new_privs, rlimits, fds).
import { execFile } from "node:child_process";
import { statSync } from "node:fs";
import { promisify } from "node:util";
import { QumraError } from "../errors.js";

const run = promisify(execFile);

export interface VmmIdentity {
  user: string;
  uid: number;
  gid: number;
}

/** A passwd line's uid and gid, or undefined when getent knows no such user. */
async function lookUp(name: string): Promise<VmmIdentity | undefined> {
  try {
    const { stdout } = await run("getent", ["passwd", name]);
    const fields = stdout.trim().split(":");
    return { user: name, uid: Number(fields[2]), gid: Number(fields[3]) };
  } catch (err) {
    if ((err as { code?: unknown }).code === 2) return undefined; // getent: key not found
    throw new QumraError("internal", `could not look up the helpers' user '${name}': ${(err as Error).message}`, { cause: err });
  }
}

/** The name of the group owning the KVM device, unless it is root's group (never hand that out). */
async function deviceGroup(device: string): Promise<string | undefined> {
  try {
    const gid = statSync(device).gid;
    if (gid === 0) return undefined;
    const { stdout } = await run("getent", ["group", String(gid)]);
    return stdout.split(":")[0] || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The identity to give helpers: undefined when the agent is not root (helpers run as the agent).
 * As root, the user `name` is created when missing (a system user without home or shell, in the
 * group owning the KVM device when that is not root's group). The helper opens the device before it
 * drops to this uid, so the group is only a convenience for running a helper by hand.
 */
export async function resolveVmmUser(name: string, device = "/dev/kvm"): Promise<VmmIdentity | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name)) throw new QumraError("invalid-argument", `--vmm-user ${name}: expected a user name like qumra-vmm`);
  let found = await lookUp(name);
  if (!found) {
    const group = await deviceGroup(device);
    const args = ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", ...(group ? ["--groups", group] : []), name];
    try {
      await run("useradd", args);
    } catch (err) {
      throw new QumraError("failed-precondition", `could not create the helpers' user '${name}' (useradd ${args.join(" ")}): ${(err as Error).message.trim()}; create it or pass --vmm-user with an existing user`, { cause: err });
    }
    found = await lookUp(name);
    if (!found) throw new QumraError("internal", `useradd created '${name}' but getent does not find it`);
  }
  if (found.uid === 0 || !Number.isInteger(found.uid) || !Number.isInteger(found.gid)) {
    throw new QumraError("failed-precondition", `--vmm-user ${name} has uid ${found.uid}: helpers need an unprivileged user`);
  }
  return found;
}
