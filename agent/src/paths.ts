// Where the project's files are at run time, whether the agent runs from source (tsx, vitest) or from dist/.
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const distMarker = `${path.sep}dist${path.sep}`;

/** The package root (the folder holding package.json). */
export const packageRoot: string = here.includes(distMarker)
  ? here.slice(0, here.lastIndexOf(distMarker))
  : path.resolve(here, "..", "..");

/** The .proto sources (used for server reflection). */
export const protoDir = path.join(packageRoot, "proto");

/** The native helper binary built by `make -C native`. */
export const defaultVmmPath = path.join(packageRoot, "native", "build", "qumra-vmm");
