// sd_notify readiness with a real receiver: a unix datagram socket (path and abstract "@name") stands
// in for systemd's; a real agent with NOTIFY_SOCKET sends READY=1 (MAINPID = the agent, STATUS=) only
// when its socket already answers, and STOPPING=1 on SIGTERM. systemd-notify sends the datagrams.
import { describe, it, expect, afterEach } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { HostServiceClient } from "../agent/src/gen/qumra/v1/host.js";
import { cleanup, repoRoot, startAgent, tempDir, type RunningAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { waitUntil } from "./helpers/health.js";

interface Datagram {
  pid: number | null;
  fields: Record<string, string>;
}

/** Starts test/helpers/notify-receiver.py on `address`; resolves once it is bound. */
async function startReceiver(address: string): Promise<{ process: ChildProcess; datagrams: Datagram[] }> {
  const child = spawn("python3", [path.join(repoRoot, "test/helpers/notify-receiver.py"), address], { stdio: ["ignore", "pipe", "pipe"] });
  const datagrams: Datagram[] = [];
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const lines = out.split("\n");
      out = lines.pop()!;
      for (const line of lines) {
        if (line === "listening") resolve();
        else datagrams.push(JSON.parse(line) as Datagram);
      }
    });
    child.once("exit", (code) => reject(new Error(`notify receiver exited with ${code}: ${err}`)));
  });
  return { process: child, datagrams };
}

describe("sd_notify readiness", () => {
  const dirs: string[] = [];
  let receiver: ChildProcess | undefined;
  let agent: RunningAgent | undefined;
  /** The agent being started, so a test that fails before it has the agent still stops it. */
  let starting: Promise<RunningAgent> | undefined;
  afterEach(async () => {
    await (agent ?? (await starting?.catch(() => undefined)))?.stop();
    starting = undefined;
    receiver?.kill("SIGKILL");
    cleanup(...dirs.splice(0));
    agent = receiver = undefined;
  });

  it.each([
    ["a socket path", (dir: string) => path.join(dir, "notify.sock")],
    ["an abstract socket", (dir: string) => `@qumra-test-notify-${path.basename(dir)}`],
  ])("over %s: READY=1 after the API answers, with MAINPID and STATUS; STOPPING=1 on SIGTERM", async (_what, addressIn) => {
    const dir = tempDir("notify");
    const stateDir = tempDir("state");
    const runtimeDir = tempDir("run");
    dirs.push(dir, stateDir, runtimeDir);
    const r = await startReceiver(addressIn(dir));
    receiver = r.process;
    starting = startAgent(["--unix", path.join(runtimeDir, "qumra.sock"), "--display-workers", "0"], { stateDir, runtimeDir, env: { NOTIFY_SOCKET: addressIn(dir) } });

    // Not waiting for the agent's log line: READY=1 alone must mean the socket answers.
    await waitUntil(() => r.datagrams.some((d) => d.fields.READY === "1"), "READY=1");
    const host = new HostServiceClient(`unix:${path.join(runtimeDir, "qumra.sock")}`, grpc.credentials.createInsecure());
    expect((await call(host, host.getHost, {}, 5000)).hostname).toBeTruthy();
    host.close();

    agent = await starting;
    const ready = r.datagrams.find((d) => d.fields.READY === "1")!;
    expect(Number(ready.fields.MAINPID)).toBe(agent.process.pid);
    expect(ready.fields.STATUS).toMatch(/^serving 0 VMs on unix:.*qumra\.sock/);
    expect(r.datagrams.filter((d) => d.fields.READY === "1")).toHaveLength(1);
    // systemd-notify ran and its barrier was answered (the receiver closes the pipe it passes).
    expect(agent.logs()).not.toMatch(/systemd-notify failed|cannot run systemd-notify/);

    expect(await agent.stop("SIGTERM")).toBe(0);
    const stopping = r.datagrams.find((d) => d.fields.STOPPING === "1");
    expect(stopping?.fields.STATUS).toMatch(/stopping on SIGTERM/);
    expect(r.datagrams.indexOf(stopping!)).toBeGreaterThan(r.datagrams.indexOf(ready));
  });
});
