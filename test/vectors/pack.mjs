#!/usr/bin/env node
// Packs a folder of SPICE reference vectors (vectors.json and the files it names) into this folder:
// vectors.json as is, files.json (name, size and SHA-256 of each file, in pack order) and files.br
// (the files concatenated in that order, brotli at quality 11 with a 16 MiB window, so one image's
// rgb32/rgba/rgb24 forms share the dictionary). Usage: node test/vectors/pack.mjs SOURCE_DIR
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants } from "node:zlib";

const source = process.argv[2];
if (!source) {
  console.error("usage: node test/vectors/pack.mjs SOURCE_DIR (a folder with vectors.json)");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const index = readFileSync(path.join(source, "vectors.json"), "utf8");
const names = new Set();
for (const v of JSON.parse(index)) for (const f of [v.input, v.output, ...(v.inputs ?? []), ...(v.outputs ?? [])]) if (f) names.add(f);
const files = [...names].sort().map((name) => {
  const bytes = readFileSync(path.join(source, name));
  return { name, bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex"), data: bytes };
});
const all = Buffer.concat(files.map((f) => f.data));
const packed = brotliCompressSync(all, {
  params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_LGWIN]: 24, [constants.BROTLI_PARAM_SIZE_HINT]: all.length },
});
writeFileSync(path.join(here, "vectors.json"), index);
writeFileSync(path.join(here, "files.json"), `${JSON.stringify(files.map(({ name, bytes, sha256 }) => ({ name, bytes, sha256 })), null, 1)}\n`);
writeFileSync(path.join(here, "files.br"), packed);
console.log(`${files.length} files, ${all.length} bytes → files.br ${packed.length} bytes`);
