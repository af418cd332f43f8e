// Helpers for tests that drive qumra-vmm directly: spawned helpers are tracked and reaped, and the
// console is read with waits for markers.
import { mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import type { HelperClient, HelperError } from "../../agent/src/vm/helper-client.js";
import { spawnHelper, type SpawnOptions, type SpawnedHelper } from "../../agent/src/vm/helper-process.js";

const dirs: string[] = [];
const pids: number[] = [];

/** Spawns a helper in a fresh runtime dir under /tmp; reapHelpers() kills and removes them all. */
export async function spawnTracked(prefix: string, spec: SpawnOptions["spec"]): Promise<{ h: SpawnedHelper; dir: string }> {
  const dir = mkdtempSync(path.join("/tmp", prefix));
  dirs.push(dir);
  const h = await spawnHelper({ runtimeDir: dir, spec });
  pids.push(h.pid);
  return { h, dir };
}

/** For afterAll: SIGKILL every tracked helper and remove the runtime dirs. */
export function reapHelpers(): void {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface ConsoleLog {
  text(): string;
  /** Resolves when the output after offset `from` contains `s`; rejects on timeout or when the connection closes. */
  waitFor(s: string, from?: number, ms?: number): Promise<void>;
}

/** Console text a client has seen since it attached. */
export function consoleLog(client: HelperClient, defaultMs = 30_000): ConsoleLog {
  let text = "";
  const waiters = new Set<() => void>();
  client.on("console", (b) => {
    text += b.toString("latin1");
    for (const w of [...waiters]) w();
  });
  return {
    text: () => text,
    waitFor: (s, from = 0, ms = defaultMs) =>
      new Promise<void>((resolve, reject) => {
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
          client.off("close", onClose);
        };
        const check = (): void => {
          if (!text.slice(from).includes(s)) return;
          cleanup();
          resolve();
        };
        const onClose = (e: HelperError): void => {
          cleanup();
          reject(e);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`console never showed ${JSON.stringify(s)}; got ${JSON.stringify(text.slice(-300))}`));
        }, ms);
        waiters.add(check);
        client.on("close", onClose);
        check();
      }),
  };
}
