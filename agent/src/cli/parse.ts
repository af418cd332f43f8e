// Parsers for CLI arguments: sizes, addresses, labels. Each throws a message naming the flag.

/** "64M", "1G", "512K", "4096" → bytes. */
export function parseSize(text: string, flag: string): number {
  const match = /^(\d+)([KMGT]i?B?)?$/i.exec(text.trim());
  if (!match) throw new Error(`${flag} ${text}: expected a size such as 64M, 1G or 1048576`);
  const unit = (match[2] ?? "").charAt(0).toUpperCase();
  const shift = { "": 0, K: 10, M: 20, G: 30, T: 40 }[unit] ?? 0;
  const value = Number(match[1]) * 2 ** shift;
  if (!Number.isSafeInteger(value)) throw new Error(`${flag} ${text}: too large`);
  return value;
}

/** "0x100000" or "1048576" → number. */
export function parseAddress(text: string, flag: string): number {
  const value = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) throw new Error(`${flag} ${text}: expected an address such as 0x100000`);
  return value;
}

export function parseIntIn(text: string, flag: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${flag} ${text}: expected a whole number from ${min} to ${max}`);
  return value;
}

/** "k=v" pairs → record. */
export function parseLabels(pairs: string[], flag: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`${flag} ${pair}: expected KEY=VALUE`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function hex(n: bigint | number, width = 0): string {
  return `0x${n.toString(16).padStart(width, "0")}`;
}
