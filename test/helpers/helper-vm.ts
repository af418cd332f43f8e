// Helpers for tests that drive qumra-vmm directly: spawned helpers are tracked and reaped, and the
// console is read with waits for markers. fakeHelper() stands in for qumra-vmm where KVM is not the point.
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { HelperClient } from "../../agent/src/vm/helper-client.js";
import type { HelperError } from "../../agent/src/vm/helper-errors.js";
import { Flags, MsgType, encodeFrame, splitFrames, type Frame } from "../../agent/src/vm/helper-protocol.js";
import { spawnHelper, type SpawnOptions, type SpawnedHelper } from "../../agent/src/vm/helper-process.js";
import { createSecret } from "../../agent/src/vm/control-secret.js";

const dirs: string[] = [];
const pids: number[] = [];

/** A spawned helper and the control secret it was given (connect with { secret: h.secret }). */
export type TrackedHelper = SpawnedHelper & { secret: string; secretFile: string };

/**
 * Spawns a helper in a fresh runtime dir under /tmp, with a fresh control secret in that dir;
 * reapHelpers() kills and removes them all.
 */
export async function spawnTracked(prefix: string, args: SpawnOptions["args"]): Promise<{ h: TrackedHelper; dir: string }> {
  const dir = mkdtempSync(path.join("/tmp", prefix));
  dirs.push(dir);
  const secretFile = path.join(dir, "control.secret");
  const secret = createSecret(secretFile);
  const h = await spawnHelper({ runtimeDir: dir, secretFile, args });
  pids.push(h.pid);
  return { h: { ...h, secret, secretFile }, dir };
}

/** A syntactically valid secret for fake helpers (which check nothing). */
export const FAKE_SECRET = "0".repeat(64);

/** For afterAll: SIGKILL every tracked helper and remove the runtime dirs. */
export function reapHelpers(): void {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface ConsoleLog {
  text(): string;
  /** Resolves when the output after offset `from` contains `s`; rejects on timeout or when the connection closes. */
  waitFor(s: string, from?: number, ms?: number): Promise<void>;
}

/** Console text a client has seen since it attached. */
export function consoleLog(client: HelperClient, defaultMs = 30_000): ConsoleLog {
  let text = "";
  const waiters = new Set<() => void>();
  client.on("console", (b) => {
    text += b.toString("latin1");
    for (const w of [...waiters]) w();
  });
  return {
    text: () => text,
    waitFor: (s, from = 0, ms = defaultMs) =>
      new Promise<void>((resolve, reject) => {
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
          client.off("close", onClose);
        };
        const check = (): void => {
          if (!text.slice(from).includes(s)) return;
          cleanup();
          resolve();
        };
        const onClose = (e: HelperError): void => {
          cleanup();
          reject(e);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`console never showed ${JSON.stringify(s)}; got ${JSON.stringify(text.slice(-300))}`));
        }, ms);
        waiters.add(check);
        client.on("close", onClose);
        check();
      }),
  };
}

/** What a fake helper sends back for one request: a payload, an error reply, or nothing at all. */
export type FakeAnswer = { payload?: Uint8Array } | { error: { name: string; code?: number; message?: string } } | "silence";

export interface FakeHelper {
  /** Its control socket. */
  path: string;
  /** Every request received, in order. */
  requests: Frame[];
  /** Sends a frame (an event unless flags say otherwise) to every connected client. */
  event(type: number, payload: Uint8Array, seq?: number, flags?: number): void;
  /** Sends bytes as they are to every connected client. */
  raw(bytes: Uint8Array): void;
  /** Closes the connections (as a helper that exits does). */
  hangUp(): void;
  close(): Promise<void>;
}

export const FAKE_STATUS = { state: "created", reason: "", vcpus: 1, memory: 33554432, pid: 1, mode: "long", uptimeMs: 0, consoleHead: 0, protocol: 1 };

/**
 * A stand-in for qumra-vmm on a unix socket, for tests of the client side without KVM: HELLO and
 * STATUS answer FAKE_STATUS unless `answer` decides otherwise; any other request gets an empty reply.
 */
export async function fakeHelper(answer: (request: Frame) => FakeAnswer | undefined = () => undefined): Promise<FakeHelper> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "qvmm-fake-"));
  dirs.push(dir);
  const socketPath = path.join(dir, "control.sock");
  const requests: Frame[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      const { frames, rest } = splitFrames(Buffer.concat([buf, chunk]));
      buf = rest;
      for (const request of frames) {
        requests.push(request);
        const a = answer(request) ?? (request.type === MsgType.HELLO || request.type === MsgType.STATUS ? { payload: Buffer.from(JSON.stringify(FAKE_STATUS)) } : {});
        if (a === "silence") continue;
        if ("error" in a) socket.write(encodeFrame(request.type, Flags.REPLY | Flags.ERROR, request.id, Buffer.from(JSON.stringify({ code: 0, message: "", ...a.error }))));
        else socket.write(encodeFrame(request.type, Flags.REPLY, request.id, a.payload));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    path: socketPath,
    requests,
    event: (type, payload, seq = 1, flags = Flags.EVENT) => {
      for (const s of sockets) s.write(encodeFrame(type, flags, seq, payload));
    },
    raw: (bytes) => {
      for (const s of sockets) s.write(bytes);
    },
    hangUp: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
