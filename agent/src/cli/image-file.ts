// Reads the file given to `vm create --image`: only a regular file of at most the agent's image limit,
// checked before reading, so `--image /dev/zero` or a huge file fails at once with a clear message.
import { readFileSync, statSync } from "node:fs";
import { MAX_IMAGE_BYTES } from "../vm/spec.js";

export function readImageFile(file: string, maxBytes = MAX_IMAGE_BYTES): Buffer {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    throw new Error(`--image ${file}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
  if (!st.isFile()) throw new Error(`--image ${file} is not a regular file (it is ${kindOf(st)}): give a flat binary image file`);
  if (st.size === 0) throw new Error(`--image ${file} is empty`);
  if (st.size > maxBytes) throw new Error(`--image ${file} is ${st.size} bytes: images are at most ${maxBytes} bytes (${maxBytes / (1 << 20)} MiB)`);
  const data = readFileSync(file);
  // The file may have grown between the check and the read.
  if (data.length > maxBytes) throw new Error(`--image ${file} grew to ${data.length} bytes while being read: at most ${maxBytes}`);
  return data;
}

function kindOf(st: import("node:fs").Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isFIFO()) return "a pipe";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}
