// The qumra codec module: SPICE's lossless image codecs, and the display pipeline's frame diff and
// graduality test. Each export works on buffers in this module's linear memory (see memory.ts). One line
// per file; keep them sorted. The GLZ dictionary names its exports, since it also exports state for the
// coder that must not become module exports.
export * from "./memory";
export * from "./frame_diff";
export * from "./glz";
export { glzInit, glzInputPtr, glzNextImageId, glzWindowImages } from "./glz_dict";
export * from "./glz_decode";
export * from "./graduality";
export * from "./lz";
export * from "./lz_decode";
export * from "./quic";
export * from "./quic_decode";
