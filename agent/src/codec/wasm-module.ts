// Loads the codec WebAssembly module (built by `npm run build:wasm` into dist/wasm/codecs.wasm).
// One instance per encoder state: GLZ keeps its window across images, so each viewer gets its own.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

/** Exports every codec module has; codec wrappers cast to a richer interface for their own functions. */
export interface CodecExports {
  memory: WebAssembly.Memory;
  alloc(size: number): number;
  reset(): void;
}

let compiled: WebAssembly.Module | undefined;

/** Path of the release module, found relative to this file whether it runs from source or from dist/. */
export function wasmPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = here.includes(`${path.sep}dist${path.sep}`)
    ? here.slice(0, here.lastIndexOf(`${path.sep}dist${path.sep}`))
    : path.resolve(here, "../../..");
  return path.join(root, "dist", "wasm", "codecs.wasm");
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

/** A view of `length` bytes at `offset` in the instance's memory (re-taken after every memory.grow). */
export function bytesAt(exports: CodecExports, offset: number, length: number): Uint8Array {
  return new Uint8Array(exports.memory.buffer, offset, length);
}
