// Linear-memory management shared by all codecs.
//
// The module is built with `--runtime stub`: there is no garbage collector, only a bump allocator.
// The host asks for buffers with `alloc` and writes pixels into them in place; codecs never allocate
// managed objects in their hot paths. `reset` drops every allocation at once (used when a caller needs
// bigger buffers); codec state that must survive lives in static data (`memory.data`) or is re-created
// by the codec's init function after a reset.

/** Allocates `size` bytes (16-byte aligned) and returns their offset in linear memory; grows memory as needed. */
export function alloc(size: usize): usize {
  return heap.alloc(size);
}

/** Forgets every allocation made with `alloc`. Offsets handed out before become invalid. */
export function reset(): void {
  heap.reset();
}
