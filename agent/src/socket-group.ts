// The group that owns the read-write API socket: --socket-group, else "qumra" when it exists, else the
// agent's own group (root's, when the agent runs as root).
import { readFileSync } from "node:fs";
import { ConfigError } from "./config-error.js";

export interface SocketGroup {
  name: string;
  gid: number;
}

/** The groups of /etc/group, name → gid. */
function readGroups(file = "/etc/group"): Map<string, number> {
  const groups = new Map<string, number>();
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return groups;
  }
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name && gid !== undefined && /^\d+$/.test(gid)) groups.set(name, Number(gid));
  }
  return groups;
}

export function resolveSocketGroup(flag: string | undefined): SocketGroup {
  const groups = readGroups();
  if (flag !== undefined) {
    if (/^\d+$/.test(flag)) return { name: flag, gid: Number(flag) };
    const gid = groups.get(flag);
    if (gid === undefined) throw new ConfigError(`--socket-group ${flag}: no such group in /etc/group (create it with groupadd ${flag}, or name another)`);
    return { name: flag, gid };
  }
  const qumra = groups.get("qumra");
  if (qumra !== undefined) return { name: "qumra", gid: qumra };
  const own = process.getgid?.() ?? 0;
  const name = [...groups].find(([, gid]) => gid === own)?.[0] ?? String(own);
  return { name, gid: own };
}
