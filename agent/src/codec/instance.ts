// One instance of the codec module with its input and output regions in linear memory.
//
// The caller writes pixels straight into `input(size)` (e.g. a positional read from a framebuffer file
// lands there), calls a codec, and reads the encoding out of the returned view. Views stay valid until
// the next call on the same instance that can grow memory.
import { instantiateCodecs, type CodecExports } from "./wasm-module.js";

interface Region {
  offset: number;
  capacity: number;
}

export class CodecInstance<T extends CodecExports = CodecExports> {
  readonly exports: T;
  private inputRegion: Region = { offset: 0, capacity: 0 };
  private outputRegion: Region = { offset: 0, capacity: 0 };

  constructor() {
    this.exports = instantiateCodecs<T>();
  }

  /** Offset and a writable view of an input region of at least `size` bytes. */
  input(size: number): { offset: number; bytes: Uint8Array } {
    this.inputRegion = this.ensure(this.inputRegion, size);
    return { offset: this.inputRegion.offset, bytes: this.view(this.inputRegion.offset, size) };
  }

  /** Offset of an output region of at least `size` bytes. */
  output(size: number): { offset: number; capacity: number } {
    this.outputRegion = this.ensure(this.outputRegion, size);
    return { ...this.outputRegion };
  }

  /** A view of linear memory; taken fresh because memory.grow detaches older views. */
  view(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.exports.memory.buffer, offset, length);
  }

  /** Copies `data` into the input region (for callers whose bytes are not already in WASM memory). */
  load(data: Uint8Array): number {
    const { offset, bytes } = this.input(data.length);
    bytes.set(data);
    return offset;
  }

  // Regions only grow (doubling), so the bump allocator wastes at most as much as the largest region.
  private ensure(region: Region, size: number): Region {
    if (size <= region.capacity) return region;
    const capacity = Math.max(size, region.capacity * 2, 4096);
    return { offset: this.exports.alloc(capacity), capacity };
  }
}
