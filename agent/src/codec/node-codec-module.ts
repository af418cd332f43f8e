// The codec module for Node processes: compiled from the file `npm run build:wasm` writes.
import { readFileSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../paths.js";
import { setCodecModuleLoader } from "./wasm-module.js";

/** Path of the release module built by `npm run build:wasm`. */
export function wasmPath(): string {
  return path.join(packageRoot, "dist", "wasm", "codecs.wasm");
}

/** Makes codec instances in this process compile dist/wasm/codecs.wasm on first use. */
export function useNodeCodecModule(): void {
  setCodecModuleLoader(() => new WebAssembly.Module(readFileSync(wasmPath())));
}
