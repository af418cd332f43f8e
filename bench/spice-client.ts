// Runs bench/spice-client.py (spice-gtk through SpiceClientGLib, Debian's python3) and reads its JSON lines.
// A real spice-gtk client, because what is measured is what users see: spice-gtk's link, its acks (the
// server's flow control), its decoders, its canvas. spicy-screenshot alone would do for the first screen,
// but it exits at the first invalidate (before a keyframe sent as several rects is complete) and cannot
// stay connected for the typing and full-screen sessions.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { packageRoot } from "../agent/src/paths.js";
import type { Teardown } from "./teardown.js";

export const PYTHON = "/usr/bin/python3";
export const CLIENT_SCRIPT = path.join(packageRoot, "bench", "spice-client.py");

export interface ClientEvent {
  event: "first" | "ready" | "done" | "error";
  ms?: number;
  width?: number;
  height?: number;
  message?: string;
  invalidates?: number;
}

/** Why the client cannot run here, or undefined when it can. */
export function clientMissing(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is missing (Debian's python3 with python3-gi)`;
  const probe = spawnSync(PYTHON, ["-c", "import gi; gi.require_version('SpiceClientGLib', '2.0'); from gi.repository import SpiceClientGLib"]);
  return probe.status === 0 ? undefined : "SpiceClientGLib is missing (apt install python3-gi gir1.2-spiceclientglib-2.0)";
}
function run(args: string[], teardown: Teardown): { child: ChildProcess; events: AsyncIterableIterator<ClientEvent>; stderr: () => string } {
  const child = teardown.child("spice client", spawn(PYTHON, [CLIENT_SCRIPT, ...args], { stdio: ["pipe", "pipe", "pipe"] }));
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout! });
  async function* events(): AsyncGenerator<ClientEvent> {
    for await (const line of lines) if (line.startsWith("{")) yield JSON.parse(line) as ClientEvent;
  }
  return { child, events: events(), stderr: () => stderr };
}

function failed(e: ClientEvent | undefined, stderr: string): Error {
  return new Error(`spice client: ${e?.message ?? `ended without a result${stderr ? `: ${stderr.trim().split("\n").slice(-3).join(" / ")}` : ""}`}`);
}

/** `runs` sessions one after another, each timed from connect to the first complete screen. */
export async function firstScreens(host: string, port: number, runs: number, password: string | undefined, teardown: Teardown, onRun?: (e: ClientEvent) => void): Promise<ClientEvent[]> {
  const c = run(["first", host, String(port), String(runs), ...(password ? [password] : [])], teardown);
  const out: ClientEvent[] = [];
  for await (const e of c.events) {
    if (e.event !== "first") throw failed(e, c.stderr());
    out.push(e);
    onRun?.(e);
    if (out.length === runs) break;
  }
  if (out.length < runs) throw failed(undefined, c.stderr());
  return out;
}

export interface WatchingClient {
  /** The first complete screen: its size, and connect → complete in ms. */
  ready: ClientEvent;
  /** Disconnects; resolves with the number of invalidates the client drew. */
  close(): Promise<number>;
}

/** One client that stays connected (decoding and acking everything) until close(). */
export async function watch(host: string, port: number, password: string | undefined, teardown: Teardown): Promise<WatchingClient> {
  const c = run(["watch", host, String(port), ...(password ? [password] : [])], teardown);
  const first = await c.events.next();
  if (first.done || first.value.event !== "ready") throw failed(first.done ? undefined : first.value, c.stderr());
  return {
    ready: first.value,
    close: async () => {
      c.child.stdin!.end();
      const done = await c.events.next();
      return done.done ? 0 : (done.value.invalidates ?? 0);
    },
  };
}
