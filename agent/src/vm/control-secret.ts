// The per-VM secret of a helper's control socket: written by the agent at create (0600, in the VM's
// state folder), passed to the helper as --secret-file, sent in every HELLO. Whoever cannot read the
// file cannot take the helper's socket over (native/PROTOCOL.md, "Authentication").
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Proto } from "../gen/helper-abi.js";
import { HelperError } from "./helper-errors.js";
import { writeAtomic } from "./store.js";

const SECRET_RE = new RegExp(`^[0-9a-f]{${Proto.SECRET_HEX}}$`);

/** Makes a new secret and writes it to file (temp + fsync + rename, mode 0600); returns it. */
export function createSecret(file: string): string {
  const secret = randomBytes(Proto.SECRET_HEX / 2).toString("hex");
  writeAtomic(file, `${secret}\n`);
  return secret;
}

/** Reads a secret written by createSecret; a missing or damaged file is a HelperError that says which. */
export async function readSecret(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new HelperError(code === "ENOENT" ? "NOT_FOUND" : "CONNECT_FAILED", `the VM's control secret ${file} cannot be read (${code ?? String(err)})`);
  }
  const secret = text.trim();
  if (!SECRET_RE.test(secret)) throw new HelperError("AUTH", `the VM's control secret ${file} is damaged: it must hold ${Proto.SECRET_HEX} lowercase hex digits`);
  return secret;
}
