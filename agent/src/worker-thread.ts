// Starts a worker thread from a module next to the caller: the compiled .js in a build, or the .ts
// source through tsx (worker-from-source.mjs) when the caller itself runs from the sources (vitest, tsx).
import { Worker, type WorkerOptions } from "node:worker_threads";

/** `name` is the module's file name without extension, resolved against the caller's `import.meta.url`. */
export function startWorker(name: string, callerUrl: string, options: WorkerOptions & { workerData?: Record<string, unknown> } = {}): Worker {
  const fromSource = callerUrl.endsWith(".ts");
  const entry = new URL(`./${name}${fromSource ? ".ts" : ".js"}`, callerUrl);
  const script = fromSource ? new URL("./worker-from-source.mjs", import.meta.url) : entry;
  return new Worker(script, { ...options, workerData: { ...options.workerData, entry: entry.href } });
}
