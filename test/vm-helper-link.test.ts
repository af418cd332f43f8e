// HelperLink's supervision when the control socket closes, over a fake helper on a real unix socket
// and a real process standing in for the helper's: an exit is reported without reconnecting, a
// running helper is connected to again, one that stays unreachable (or refuses the secret) is killed
// and its VM reported CRASHED. Short reconnect pauses; the assertions wait on events, not on time.
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../agent/src/logger.js";
import { HelperClient } from "../agent/src/vm/helper-client.js";
import { withCallDeadline } from "../agent/src/vm/call-deadline.js";
import { HelperExit } from "../agent/src/gen/helper-abi.js";
import { isStopped, procState } from "../agent/src/vm/helper-process.js";
import { HelperLink, type HelperLauncher, type ReconnectPolicy } from "../agent/src/vm/helper-link.js";
import { MsgType, type Frame } from "../agent/src/vm/helper-protocol.js";
import { VmManager } from "../agent/src/vm/manager.js";
import { FAKE_SECRET, fakeHelper, reapHelpers, type FakeAnswer, type FakeHelper } from "./helpers/helper-vm.js";

afterAll(reapHelpers);
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const FAST: ReconnectPolicy = { exitGraceMs: 50, backoffMs: [20, 40, 80] };
const log = createLogger("fatal");

/** A process of our own in the helper's place, and a promise of how it ended. */
function standIn(): { proc: ChildProcess; ended: Promise<NodeJS.Signals | null> } {
  const proc = spawn(process.execPath, ["-e", "setTimeout(() => {}, 600000)"], { stdio: "ignore" });
  const ended = new Promise<NodeJS.Signals | null>((r) => proc.once("exit", (_code, signal) => r(signal)));
  cleanups.push(() => void proc.kill("SIGKILL"));
  return { proc, ended };
}

async function linked(answer?: (r: Frame) => FakeAnswer | undefined): Promise<{ fake: FakeHelper; link: HelperLink; stand: ReturnType<typeof standIn> }> {
  const fake = await fakeHelper(answer);
  cleanups.push(() => fake.close());
  const stand = standIn();
  const client = await HelperClient.connect(fake.path, { secret: FAKE_SECRET });
  const link = new HelperLink(stand.proc.pid!, fake.path, client, false, FAKE_SECRET, log, undefined, FAST);
  cleanups.push(() => link.detach());
  return { fake, link, stand };
}

const hellos = (fake: FakeHelper) => fake.requests.filter((r) => r.type === MsgType.HELLO).length;

describe("HelperLink when the control socket closes", () => {
  it("reports a helper that exited, without connecting again", async () => {
    const { fake, link, stand } = await linked();
    stand.proc.kill("SIGKILL");
    await stand.ended;
    fake.hangUp();
    // No exit record in its log (it has none): SIGKILL or a crash, not "stopped answering".
    expect(await link.ended).toBe(`helper process ${stand.proc.pid} was killed (SIGKILL or a crash): it left no exit record in its log`);
    expect(hellos(fake)).toBe(1);
  });

  it("connects again to a helper that still runs, with the same secret, and says so", async () => {
    const { fake, link, stand } = await linked();
    const first = link.client;
    const back = new Promise((r) => link.once("reconnected", r));
    fake.hangUp();
    expect(await back).toMatchObject({ state: "created" });
    expect(link.client).not.toBe(first);
    expect(hellos(fake)).toBe(2);
    expect(JSON.parse(fake.requests.filter((r) => r.type === MsgType.HELLO)[1].payload.toString()).secret).toBe(FAKE_SECRET);
    expect(stand.proc.exitCode === null && stand.proc.signalCode === null).toBe(true);
  });

  it("kills a helper whose socket cannot be reached again, and says why", async () => {
    const { fake, link, stand } = await linked();
    await fake.close(); // the socket is gone, the process runs on
    expect(await link.ended).toMatch(new RegExp(`helper process ${stand.proc.pid} still ran but its control socket could not be reached again \\(.*\\); it was killed`));
    expect(await stand.ended).toBe("SIGKILL");
  });

  it("gives up at once when the helper refuses the secret", async () => {
    let refuse = false;
    const { fake, link, stand } = await linked((r) => (refuse && r.type === MsgType.HELLO ? { error: { name: "AUTH", message: "wrong secret" } } : undefined));
    refuse = true;
    fake.hangUp();
    expect(await link.ended).toMatch(/could not be reached again \(wrong secret\); it was killed/);
    expect(hellos(fake)).toBe(2); // one try, no retries
    expect(await stand.ended).toBe("SIGKILL");
  });

  it("makes the VM CRASHED with that reason in the manager", async () => {
    const fake = await fakeHelper();
    cleanups.push(() => fake.close());
    const stand = standIn();
    const launcher: HelperLauncher = {
      async launch(_vmId, _spec, _image, secret, l) {
        const client = await HelperClient.connect(fake.path, { secret: secret.value });
        return new HelperLink(stand.proc.pid!, fake.path, client, false, secret.value, l, undefined, FAST);
      },
      reattach: () => Promise.reject(new Error("no re-attach in this test")),
    };
    const stateDir = mkdtempSync(path.join(os.tmpdir(), "qumra-link-"));
    const vms = new VmManager({ stateDir, runtimeDir: stateDir, logger: log, launcher, hostLimits: async () => ({ maxVcpus: 8, availableMemory: 1 << 30 }) });
    cleanups.push(() => {
      vms.close();
      rmSync(stateDir, { recursive: true, force: true });
    });
    await vms.create("vm1", "r1", { name: "vm1", vcpus: 1, memoryBytes: 32 << 20, boot: { kind: "demo" }, labels: {} });
    await fake.close();
    await stand.ended;
    for (let i = 0; i < 2000 && vms.get("vm1").state !== "CRASHED"; i++) await new Promise((r) => setTimeout(r, 10));
    expect(vms.get("vm1")).toMatchObject({ state: "CRASHED", helperPid: 0 });
    expect(vms.get("vm1").stateReason).toMatch(/could not be reached again.*it was killed/);
  });
});

/** A stand-in whose command line looks like a helper's (argv[0] qumra-vmm…, --control socket: it passes isHelperOf), optionally deaf to SIGTERM. */
async function namedStandIn(socketPath: string, ignoreTerm: boolean): Promise<{ proc: ChildProcess; ended: Promise<NodeJS.Signals | null> }> {
  const script = `${ignoreTerm ? "process.on('SIGTERM', () => {});" : ""} process.stdout.write('ready'); setTimeout(() => {}, 600000)`;
  const proc = spawn(process.execPath, ["-e", script, "--", "--control", socketPath], { argv0: "qumra-vmm-stand-in", stdio: ["ignore", "pipe", "ignore"] });
  const ended = new Promise<NodeJS.Signals | null>((r) => proc.once("exit", (_code, signal) => r(signal)));
  cleanups.push(() => void proc.kill("SIGKILL"));
  await new Promise((r) => proc.stdout!.once("data", r)); // its SIGTERM handler is in place
  return { proc, ended };
}

/** Sends SIGSTOP and waits until the process shows as stopped (delivery is asynchronous). */
async function stop(pid: number): Promise<void> {
  process.kill(pid, "SIGSTOP");
  while (!isStopped(pid)) await new Promise((r) => setTimeout(r, 10));
}

async function linkTo(stand: ChildProcess, fake: FakeHelper, requestTimeoutMs?: number): Promise<HelperLink> {
  const client = await HelperClient.connect(fake.path, { secret: FAKE_SECRET, requestTimeoutMs, pid: stand.pid });
  const link = new HelperLink(stand.pid!, fake.path, client, false, FAKE_SECRET, log, undefined, FAST);
  cleanups.push(() => link.detach());
  return link;
}

describe("HelperLink with a hung or dead helper", () => {
  it("reads a re-attached helper's exit status from the last line of its log", async () => {
    const fake = await fakeHelper();
    cleanups.push(() => fake.close());
    const stand = standIn();
    const link = await linkTo(stand.proc, fake);
    appendFileSync(path.join(path.dirname(fake.path), "qumra-vmm.log"), `1.000 qumra-vmm[${stand.proc.pid}] info: exit status ${HelperExit.CRASHED}\n`);
    stand.proc.kill("SIGKILL");
    await stand.ended;
    fake.hangUp();
    expect(await link.ended).toBe(`helper process ${stand.proc.pid} exited after the guest crashed (status ${HelperExit.CRASHED}, from its log)`);
  });

  it("a helper that died as a zombie (its parent never reaps it) is dead, not one that stopped answering", async () => {
    const fake = await fakeHelper();
    cleanups.push(() => fake.close());
    // The helper's parent is a process that never waits (sleep), like a re-attached helper whose parent
    // is not this agent: once killed, it stays a zombie.
    // (python3 installs no SIGCHLD handler and never waits here; a shell may reap its background job.)
    const child = JSON.stringify([process.execPath, "-e", "setTimeout(() => {}, 600000)"]);
    const parent = spawn("python3", ["-c", `import subprocess, sys, time\np = subprocess.Popen(${child})\nprint(p.pid, flush=True)\ntime.sleep(600)`], { stdio: ["ignore", "pipe", "ignore"] });
    cleanups.push(() => void parent.kill("SIGKILL"));
    const pid = Number(await new Promise<string>((r) => parent.stdout!.once("data", (d: Buffer) => r(d.toString().trim()))));
    cleanups.push(() => {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    });
    const client = await HelperClient.connect(fake.path, { secret: FAKE_SECRET, pid });
    const link = new HelperLink(pid, fake.path, client, false, FAKE_SECRET, log, undefined, FAST);
    cleanups.push(() => link.detach());
    process.kill(pid, "SIGKILL");
    for (let i = 0; procState(pid) !== "Z"; i++) {
      if (i > 1000) throw new Error(`helper stand-in ${pid} did not become a zombie (state ${procState(pid) ?? "gone"})`);
      await new Promise((r) => setTimeout(r, 10));
    }
    fake.hangUp();
    expect(await link.ended).toBe(`helper process ${pid} was killed (SIGKILL or a crash): it left no exit record in its log`);
    expect(hellos(fake)).toBe(1); // no attempt to connect again to a dead process
  });

  it("ends a helper deaf to SIGTERM with SIGKILL, and a stopped one too", async () => {
    const fake = await fakeHelper();
    cleanups.push(() => fake.close());
    const stand = await namedStandIn(fake.path, true);
    const link = await linkTo(stand.proc, fake);
    await stop(stand.proc.pid!);
    expect(link.hang()?.reason).toMatch(new RegExp(`helper pid ${stand.proc.pid} is stopped`));
    expect(await link.terminate(100)).toEqual({ signals: ["SIGTERM", "SIGKILL"], gone: true });
    expect(await stand.ended).toBe("SIGKILL");
  });

  it("ends a helper that honours SIGTERM with SIGTERM alone, after continuing it", async () => {
    const fake = await fakeHelper();
    cleanups.push(() => fake.close());
    const stand = await namedStandIn(fake.path, false);
    const link = await linkTo(stand.proc, fake);
    await stop(stand.proc.pid!);
    expect(await link.terminate(5000)).toEqual({ signals: ["SIGTERM"], gone: true });
    expect(await stand.ended).toBe("SIGTERM");
  });

  it("never signals a pid that is not this VM's helper", async () => {
    const { link, stand } = await linked(); // its command line does not name the socket
    expect(await link.terminate(50)).toEqual({ signals: [], gone: false });
    expect(stand.proc.exitCode === null && stand.proc.signalCode === null).toBe(true);
  });

  it("a request unanswered is a hang; the wait is capped by the client's deadline, and the error names the pid", async () => {
    const fake = await fakeHelper((r) => (r.type === MsgType.START ? "silence" : undefined));
    cleanups.push(() => fake.close());
    const stand = standIn();
    const link = await linkTo(stand.proc, fake, 60_000);
    expect(link.hang()).toBeUndefined();
    const err = await withCallDeadline(Date.now() + 1000, () => link.client.start()).catch((e: Error) => e);
    // 1 s of deadline minus the 0.25 s margin: the helper had 0.7 to 0.8 s, not the 60 s limit.
    expect((err as Error).message).toMatch(new RegExp(`^helper pid ${stand.proc.pid} did not answer in 0\\.[78] s \\(stopped\\? hung\\?\\)`));
    expect(link.hang()?.reason).toMatch(new RegExp(`helper pid ${stand.proc.pid} has not answered since`));
    await link.client.status(); // it answers again
    expect(link.hang()).toBeUndefined();
  });
});
