// Binds a gRPC server to a unix socket without a moment of wrong permissions: listen on a temporary
// name in the same dir, set mode and group, then rename onto the final name. Refuses to take over the
// socket of a live agent; removes a stale one.
import * as grpc from "@grpc/grpc-js";
import { chmodSync, chownSync, lstatSync, renameSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { randomBytes } from "node:crypto";

export interface UnixSocketOptions {
  mode: number;
  gid: number;
}

/** Resolves once `file` answers for `server`; throws when another process serves it. */
export async function bindUnixSocket(server: grpc.Server, file: string, options: UnixSocketOptions): Promise<void> {
  await removeStale(file);
  const temp = path.join(path.dirname(file), `.bind-${randomBytes(6).toString("hex")}.sock`);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${temp}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(new Error(`cannot listen on ${file}: ${err.message}`)) : resolve()));
  });
  try {
    chmodSync(temp, options.mode);
    chownSync(temp, process.getuid?.() ?? -1, options.gid);
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw new Error(`cannot set up ${file}: ${(err as Error).message}`);
  }
}

/** Removes the socket file on stop (the server listened on the temporary name, so it would not). */
export function removeUnixSocket(file: string): void {
  rmSync(file, { force: true });
}

async function removeStale(file: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(file).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new Error(`${file} exists and is not a socket; remove it or choose another --unix path`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(file);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw new Error(`another qumra-agent already answers on ${file}; stop it first, or give this one another --runtime-dir or --unix`);
  rmSync(file, { force: true });
}
