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

/** The state dir when --state-dir is not given: /var/lib/qumra as root, else the XDG state home. */
export function defaultStateDir(env: NodeJS.ProcessEnv, isRoot: boolean, home: string): string {
  return isRoot ? "/var/lib/qumra" : path.join(env.XDG_STATE_HOME ?? path.join(home, ".local", "state"), "qumra");
}

/** The runtime dir when --runtime-dir is not given; the agent and the CLI both use this. */
export function defaultRuntimeDir(env: NodeJS.ProcessEnv, isRoot: boolean, stateDir: string): string {
  return isRoot ? "/run/qumra" : env.XDG_RUNTIME_DIR ? path.join(env.XDG_RUNTIME_DIR, "qumra") : path.join(stateDir, "run");
}

/** The agent's read-write and read-only sockets in its runtime dir. */
export const SOCKET_NAME = "qumra.sock";
export const READ_ONLY_SOCKET_NAME = "qumra-ro.sock";
