// Files a VM boots from (a Linux kernel, its initrd) live in the agent's --images-dir: a client names
// them by a path relative to it and can never make the agent read anything else.
import { realpathSync, statSync } from "node:fs";
import path from "node:path";
import { invalidArgument } from "../errors.js";

/**
 * The real path of `relative` inside `imagesDir`, or INVALID_ARGUMENT naming `field`: absolute paths,
 * '..' components and anything whose real path (symlinks followed) is not under the real images dir
 * are refused, as are missing files and what is not a regular file.
 */
export function resolveInImagesDir(imagesDir: string, relative: string, field: string): string {
  if (!relative) throw invalidArgument(`${field} is empty: give a file path relative to the agent's --images-dir (${imagesDir})`);
  if (relative.includes("\0")) throw invalidArgument(`${field} contains a NUL byte`);
  if (path.isAbsolute(relative)) throw invalidArgument(`${field} '${relative}' is absolute: give a path relative to the agent's --images-dir (${imagesDir})`);
  if (relative.split(/[\\/]/).includes("..")) throw invalidArgument(`${field} '${relative}' contains '..': give a path inside the agent's --images-dir (${imagesDir})`);
  let root: string;
  try {
    root = realpathSync(imagesDir);
  } catch {
    throw invalidArgument(`${field} '${relative}': the agent's --images-dir ${imagesDir} does not exist; create it and put the file there`);
  }
  let real: string;
  try {
    real = realpathSync(path.join(root, relative));
  } catch {
    throw invalidArgument(`${field} '${relative}' does not exist in the agent's --images-dir (${imagesDir})`);
  }
  if (!real.startsWith(root + path.sep)) {
    throw invalidArgument(`${field} '${relative}' leads outside the agent's --images-dir (${imagesDir}) through a symlink: copy the file into it`);
  }
  if (!statSync(real).isFile()) throw invalidArgument(`${field} '${relative}' in the agent's --images-dir (${imagesDir}) is not a regular file`);
  return real;
}
