// A systemd unit file read as sections of key → values (a key may repeat), enough for the checks on
// deploy/systemd/qumra-agent.service. Comments and blank lines are skipped; no line continuations.
import { readFileSync } from "node:fs";

export type UnitFile = Record<string, Record<string, string[]>>;

export function readUnitFile(file: string): UnitFile {
  const unit: UnitFile = {};
  let section: Record<string, string[]> | undefined;
  for (const raw of readFileSync(file, "utf8").split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = unit[header[1]] ??= {};
      continue;
    }
    const eq = line.indexOf("=");
    if (!section || eq < 0) throw new Error(`${file}: cannot read line '${line}'`);
    (section[line.slice(0, eq).trim()] ??= []).push(line.slice(eq + 1).trim());
  }
  return unit;
}

/** The one value of `key` in `section`; throws when it is absent or set more than once. */
export function single(unit: UnitFile, section: string, key: string): string {
  const values = unit[section]?.[key] ?? [];
  if (values.length !== 1) throw new Error(`[${section}] ${key}: expected one value, found ${values.length}`);
  return values[0];
}
