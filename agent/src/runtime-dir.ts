// The runtime dir holds the API sockets, so it is 0755 (the read-only socket must be reachable by any
// local user); what must stay private lives in per-VM dirs inside it, which stay 0700.
import { chmodSync, mkdirSync, statSync } from "node:fs";

export function ensureRuntimeDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // An existing dir (an older agent made it 0700, or the umask trimmed it) gets the mode it needs.
  if ((statSync(dir).mode & 0o777) !== 0o755) chmodSync(dir, 0o755);
}
