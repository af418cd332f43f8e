// An encode worker thread: an EncoderHost answering the pool's requests (see encode-pool.ts). It gets the
// compiled codec module from the main thread, so it never reads the module file itself.
import { parentPort, workerData } from "node:worker_threads";
import { setCodecModule } from "../codec/wasm-module.js";
import { EncoderHost, type EncodeRequest } from "./encode-host.js";

const port = parentPort;
if (!port) throw new Error("encode-worker.ts runs as a worker thread of the display encode pool");
setCodecModule((workerData as { module: WebAssembly.Module }).module);
const host = new EncoderHost();

port.on("message", ({ id, req }: { id: number; req: EncodeRequest }) => {
  try {
    const { reply, transfer } = host.handle(req);
    port.postMessage({ id, reply }, transfer);
  } catch (err) {
    port.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
});
