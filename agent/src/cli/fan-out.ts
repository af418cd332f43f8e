// Runs one command on every --host in parallel and prints one result per host.
import type { ChannelCredentials, ChannelOptions } from "@grpc/grpc-js";
import { clientFor, describeError, type GlobalOptions } from "./connection.js";

export interface HostResult<T> {
  host: string;
  ok: boolean;
  result?: T;
  error?: { code: string; message: string };
}

/** How a command shows its result: text for people, and the value printed as JSON (default: the result). */
export type Render<T> = ((result: T) => string) | { text: (result: T) => string; json?: (result: T) => unknown };

/**
 * Runs `work` for each host concurrently. Output: with one host, the result itself (JSON or text);
 * with several, one entry per host (a JSON array, or text sections headed by the host). Sets a non-zero
 * exit code if any host failed.
 */
export async function fanOut<T>(
  options: GlobalOptions,
  work: (host: string) => Promise<T>,
  render: Render<T>,
): Promise<HostResult<T>[]> {
  const results = await Promise.all(
    options.host.map(async (host): Promise<HostResult<T>> => {
      try {
        return { host, ok: true, result: await work(host) };
      } catch (err) {
        return { host, ok: false, error: describeError(err) };
      }
    }),
  );
  printResults(options, results, render);
  if (results.some((r) => !r.ok)) process.exitCode = 1;
  return results;
}

export function printResults<T>(options: GlobalOptions, results: HostResult<T>[], render: Render<T>): void {
  const single = results.length === 1;
  const text = typeof render === "function" ? render : render.text;
  const view = (typeof render === "function" ? undefined : render.json) ?? ((r: T) => r);
  // Streaming commands print as they go and return nothing more to show, except failures.
  if (results.every((r) => !r.ok || r.result === undefined) && results.every((r) => r.ok)) return;
  if (options.json) {
    const shown = results.map((r) => (r.ok ? { ...r, result: view(r.result as T) } : r));
    if (single && shown[0].ok) console.log(toJson(shown[0].result));
    else if (single) console.log(toJson({ host: shown[0].host, error: shown[0].error }));
    else console.log(toJson(shown));
    return;
  }
  for (const r of results) {
    if (r.ok && r.result === undefined) continue;
    const out = r.ok ? text(r.result as T) : `error: ${r.error?.code}: ${r.error?.message}`;
    if (single) (r.ok ? console.log : console.error)(out);
    else console.log(`== ${r.host} ==\n${out}`);
  }
}

/** JSON with bigints as numbers when they are safe, strings when not. */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(
    value,
    (_key, v) => (typeof v === "bigint" ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v),
    indent,
  );
}

/** fanOut with one client of `Ctor` per host, closed when the work is done. */
export function withClients<C extends { close(): void }, T>(
  options: GlobalOptions,
  Ctor: new (address: string, credentials: ChannelCredentials, options?: ChannelOptions) => C,
  work: (client: C, host: string) => Promise<T>,
  render: Render<T>,
): Promise<HostResult<T>[]> {
  return fanOut(
    options,
    async (host) => {
      const client = clientFor(Ctor, host, options);
      try {
        return await work(client, host);
      } finally {
        client.close();
      }
    },
    render,
  );
}
