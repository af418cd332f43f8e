// The Debian SPICE clients the interop tests run (package spice-client-gtk). Where spicy-screenshot is
// absent its tests skip, loudly; CI installs it and fails on any skip.
import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const candidates = ["/usr/bin/spicy-screenshot", "/usr/local/bin/spicy-screenshot"];
export const spicyScreenshot = candidates.find((p) => existsSync(p));
export const hasSpicy = spicyScreenshot !== undefined;

if (!hasSpicy) {
  console.warn("\n*** spicy-screenshot is absent on this machine: the SPICE client interop tests are SKIPPED: install spice-client-gtk ***\n");
}

export interface SpicyResult {
  code: number;
  output: string;
  ms: number;
}

/** Runs spicy-screenshot; `env.SSL_CERT_FILE` is how it trusts a CA (it loads OpenSSL's default paths). */
export function runSpicy(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 20_000): Promise<SpicyResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(spicyScreenshot!, args, { env: { ...process.env, DISPLAY: "", ...env }, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === "number" ? Number((err as NodeJS.ErrnoException).code) : 255) : 0;
      resolve({ code, output: `${stdout}${stderr}`, ms: performance.now() - started });
    });
  });
}

/** spice-gtk's client library for Python (gir1.2-spiceclientglib-2.0, python3-gi), for input tests. */
/** The system Python (where Debian's python3-gi lives), not a version manager's shim. */
const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
export const spiceInputScript = fileURLToPath(new URL("./spice-input.py", import.meta.url));
export const hasSpiceGlib = spawnSync(python, ["-c", "import gi; gi.require_version('SpiceClientGLib', '2.0'); from gi.repository import SpiceClientGLib"], { stdio: "ignore" }).status === 0;

if (!hasSpiceGlib) {
  console.warn("\n*** SpiceClientGLib for python3 is absent: the SPICE input interop test is SKIPPED: install gir1.2-spiceclientglib-2.0 and python3-gi ***\n");
}

/** Runs spice-input.py: links a session with spice-gtk's library and sends `actions` on its inputs channel. */
export function runSpiceInput(host: string, port: number, ticket: string, actions: string[]): Promise<SpicyResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(python, [spiceInputScript, host, String(port), ticket, ...actions], { env: { ...process.env, DISPLAY: "" }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === "number" ? Number((err as NodeJS.ErrnoException).code) : 255) : 0;
      resolve({ code, output: `${stdout}${stderr}`, ms: performance.now() - started });
    });
  });
}
