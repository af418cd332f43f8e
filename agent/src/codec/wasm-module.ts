// Loads the codec WebAssembly module (built by `npm run build:wasm` into dist/wasm/codecs.wasm).
// One instance per encoder state: GLZ keeps its window across images, so each viewer gets its own.
import { readFileSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../paths.js";

/** Exports every codec module has; codec wrappers cast to a richer interface for their own functions. */
export interface CodecExports {
  memory: WebAssembly.Memory;
  alloc(size: number): number;
  reset(): void;
}

let compiled: WebAssembly.Module | undefined;

/** Path of the release module built by `npm run build:wasm`. */
export function wasmPath(): string {
  return path.join(packageRoot, "dist", "wasm", "codecs.wasm");
}

/** Compiles the module once per process, then instantiates a fresh instance (its own memory and state). */
export function instantiateCodecs<T extends CodecExports = CodecExports>(): T {
  compiled ??= new WebAssembly.Module(readFileSync(wasmPath()));
  const instance = new WebAssembly.Instance(compiled, {
    env: {
      abort(_msg: number, _file: number, line: number, col: number): never {
        throw new Error(`codec module aborted at line ${line}:${col}`);
      },
    },
  });
  return instance.exports as unknown as T;
}
