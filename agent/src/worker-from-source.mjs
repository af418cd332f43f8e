// Starts a worker thread whose code is a TypeScript source file (tests and `tsx` runs; the built agent
// starts the compiled .js directly): registers tsx in this thread, then imports workerData.entry.
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.entry);
