// Runs one command on every --host in parallel and prints one result per host.
import type { ChannelCredentials, ChannelOptions } from "@grpc/grpc-js";
import { clientFor, describeError, type GlobalOptions } from "./connection.js";

export interface HostResult<T> {
  host: string;
  ok: boolean;
  result?: T;
  error?: { code: string; message: string };
}

/**
 * Runs `work` for each host concurrently. Output: with one host, the result itself (JSON or text);
 * with several, one entry per host (a JSON array, or text sections headed by the host). Sets a non-zero
 * exit code if any host failed.
 */
export async function fanOut<T>(
  options: GlobalOptions,
  work: (host: string) => Promise<T>,
  render: (result: T) => string,
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

export function printResults<T>(options: GlobalOptions, results: HostResult<T>[], render: (result: T) => string): void {
  const single = results.length === 1;
  if (options.json) {
    if (single && results[0].ok) console.log(toJson(results[0].result));
    else if (single) console.log(toJson({ host: results[0].host, error: results[0].error }));
    else console.log(toJson(results));
    return;
  }
  for (const r of results) {
    const text = r.ok ? render(r.result as T) : `error: ${r.error?.code}: ${r.error?.message}`;
    if (single) (r.ok ? console.log : console.error)(text);
    else console.log(`== ${r.host} ==\n${text}`);
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
  render: (result: T) => string,
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
