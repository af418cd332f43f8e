// A VM label selector "k=v[,k=v]": a VM matches when it carries every pair.

export type Selector = Readonly<Record<string, string>>;

const KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;

/** Parses "tenant=a,env=prod"; throws an Error naming the bad part. */
export function parseSelector(text: string): Selector {
  const out: Record<string, string> = {};
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? "" : part.slice(0, eq).trim();
    const value = eq < 0 ? "" : part.slice(eq + 1).trim();
    if (!KEY.test(key) || value === "") throw new Error(`"${part}" is not a label pair: expected key=value, e.g. tenant=a`);
    if (key in out) throw new Error(`label ${key} appears twice`);
    out[key] = value;
  }
  return out;
}

export function selectorMatches(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

export function formatSelector(selector: Selector): string {
  return Object.entries(selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}
