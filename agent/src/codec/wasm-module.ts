// The codec WebAssembly module (wasm/assembly, built into dist/wasm/codecs.wasm). Where the compiled
// module comes from is injected: Node reads the file (node-codec-module.ts), a browser fetches it, and
// worker threads receive the main thread's compiled module. One instance per encoder state: GLZ keeps
// its window across images, so each viewer gets its own.

/** Exports every codec module has; codec wrappers cast to a richer interface for their own functions. */
export interface CodecExports {
  memory: WebAssembly.Memory;
  alloc(size: number): number;
  reset(): void;
}

let compiled: WebAssembly.Module | undefined;
let loader: (() => WebAssembly.Module) | undefined;

/** Uses this compiled module for every later instance. */
export function setCodecModule(module: WebAssembly.Module): void {
  compiled = module;
}

/** Compiles the module on first use with `load` (unless one was set). */
export function setCodecModuleLoader(load: () => WebAssembly.Module): void {
  loader = load;
}

/** The compiled module (loading it on first use). */
export function codecModule(): WebAssembly.Module {
  compiled ??= loader?.();
  if (!compiled) throw new Error("the codec WebAssembly module is not loaded: call setCodecModule or setCodecModuleLoader first");
  return compiled;
}

/** A fresh instance of the module (its own memory and state). */
export function instantiateCodecs<T extends CodecExports = CodecExports>(): T {
  const instance = new WebAssembly.Instance(codecModule(), {
    env: {
      abort(_msg: number, _file: number, line: number, col: number): never {
        throw new Error(`codec module aborted at line ${line}:${col}`);
      },
    },
  });
  return instance.exports as unknown as T;
}
