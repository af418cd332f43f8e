// The helper owns its control socket: a connection becomes the controlling one only with a HELLO
// carrying the VM's secret (native/auth.c, native/control_pending.c). Real qumra-vmm, real KVM, raw
// sockets for the strays. Waits on events and closes, never on time.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import { createSecret } from "../agent/src/vm/control-secret.js";
import { HelperClient } from "../agent/src/vm/helper-client.js";
import { HelperError } from "../agent/src/vm/helper-errors.js";
import { spawnHelper, vmmBinaryPath } from "../agent/src/vm/helper-process.js";
import { GuestCommand, MsgType, PROTOCOL_VERSION, encodeFrame } from "../agent/src/vm/helper-protocol.js";
import { Proto } from "../agent/src/gen/helper-abi.js";
import { consoleLog, reapHelpers, spawnTracked, type ConsoleLog, type TrackedHelper } from "./helpers/helper-vm.js";
import { hasKvm } from "./helpers/kvm.js";
import { refusalName, strayConnection } from "./helpers/stray.js";

afterAll(reapHelpers);

async function startDemo(): Promise<{ h: TrackedHelper; c: HelperClient; con: ConsoleLog; dir: string }> {
  const { h, dir } = await spawnTracked("qvmm-auth-", { demo: true, vcpus: 1, memoryBytes: 32 << 20 });
  const c = await HelperClient.connect(h.controlPath, { secret: h.secret });
  const con = consoleLog(c);
  await c.start();
  await con.waitFor("qumra demo guest\n");
  return { h, c, con, dir };
}

/** The controlling connection still works and the guest still runs: a PING comes back as pong. */
async function stillInControl(c: HelperClient, con: ConsoleLog, n: number): Promise<void> {
  expect(c.closed).toBe(false);
  expect((await c.status()).state).toBe("running");
  const from = con.text().length;
  await c.guestCommand(GuestCommand.PING, n);
  await con.waitFor(`pong ${n}\n`, from);
}

const hello = (body: object): Buffer => encodeFrame(MsgType.HELLO, 0, 1, Buffer.from(JSON.stringify(body)));

describe.skipIf(!hasKvm)("qumra-vmm refuses control connections without the VM's secret", () => {
  it("refuses garbage, a wrong or missing secret, an old HELLO, a first request that is not HELLO and silence, and nothing changes", async () => {
    const { h, c, con, dir } = await startDemo();
    const wrong = "f".repeat(Proto.SECRET_HEX);
    const cases: [string, Buffer | undefined, string | undefined][] = [
      ["garbage", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "NO_HELLO"],
      ["no secret", hello({ version: PROTOCOL_VERSION }), "AUTH"],
      ["wrong secret", hello({ version: PROTOCOL_VERSION, secret: wrong }), "AUTH"],
      ["secret too short", hello({ version: PROTOCOL_VERSION, secret: h.secret.slice(1) }), "AUTH"],
      ["protocol 1", hello({ version: 1 }), "VERSION"],
      ["STATUS first", encodeFrame(MsgType.STATUS, 0, 9), "NO_HELLO"],
      ["START first", encodeFrame(MsgType.START, 0, 9), "NO_HELLO"],
      ["STOP first", encodeFrame(MsgType.STOP, 0, 9, Buffer.from('{"timeoutMs":0}')), "NO_HELLO"],
      ["HELLO too large", encodeFrame(MsgType.HELLO, 0, 1, Buffer.alloc(Proto.HELLO_MAX + 1, 0x20)), "TOO_LARGE"],
      ["silence", undefined, "AUTH"], // closed after PROTO_AUTH_TIMEOUT_MS
    ];
    let n = 100;
    for (const [what, bytes, refusal] of cases) {
      const s = await strayConnection(h.controlPath);
      if (bytes) s.send(bytes);
      await s.closed;
      expect(s.replies.map(refusalName), what).toEqual(refusal ? [refusal] : []);
      await stillInControl(c, con, n++);
    }
    // A stray that connects and hangs up at once (a health probe) changes nothing either.
    const probe = await strayConnection(h.controlPath);
    probe.destroy();
    await probe.closed;
    await stillInControl(c, con, n++);
    // Each refusal is in the helper's log with the peer, rate-limited (a burst of 5 per second).
    const log = readFileSync(path.join(dir, "qumra-vmm.log"), "utf8");
    expect(log).toMatch(/control connection from pid \d+ uid 0 refused: /);
    expect(log).not.toMatch(/replaces the attached one/);
    await c.stop(5000);
  });

  it("5 strays that never speak do not lock the agent out: an authenticated client still attaches at once", async () => {
    const { h, c, con } = await startDemo();
    const strays = await Promise.all(Array.from({ length: Proto.MAX_PENDING + 1 }, () => strayConnection(h.controlPath)));
    await stillInControl(c, con, 1);
    // The agent re-attaching (after a restart) with the secret replaces the old controller.
    const oldClosed = new Promise<HelperError>((r) => c.once("close", r));
    const told = c.waitFor((e) => e.kind === "replaced");
    const c2 = await HelperClient.connect(h.controlPath, { secret: h.secret });
    expect(c2.hello?.state).toBe("running");
    expect(await told).toMatchObject({ kind: "replaced", reason: "another client with the VM's secret took control" });
    await oldClosed;
    await stillInControl(c2, consoleLog(c2), 2);
    // The strays are all closed by the helper: the oldest when the slots overflowed, the rest by the timeout.
    await Promise.all(strays.map((s) => s.closed));
    await stillInControl(c2, consoleLog(c2), 3);
    await c2.stop(5000);
  });

  it("a connection that sends the wrong secret is refused with AUTH by the client too", async () => {
    const { h, c, con } = await startDemo();
    await expect(HelperClient.connect(h.controlPath, { secret: "0".repeat(Proto.SECRET_HEX) })).rejects.toMatchObject({ code: "AUTH" });
    await stillInControl(c, con, 7);
    await c.stop(5000);
  });

  it("will not start without a usable secret file", async () => {
    const dir = mkdtempSync(path.join("/tmp", "qvmm-auth-bad-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const bad = async (secretFile: string): Promise<string> => {
      const err = await spawnHelper({ runtimeDir: path.join(dir, "x"), secretFile, args: { demo: true, vcpus: 1, memoryBytes: 16 << 20 } }).then(
        () => new Error("started"),
        (e: unknown) => e as Error,
      );
      expect(err).toBeInstanceOf(HelperError);
      return err.message;
    };
    const file = path.join(dir, "s.secret");
    createSecret(file);
    chmodSync(file, 0o644);
    expect(await bad(file)).toMatch(/mode 0644: group and others must have no access/);
    expect(await bad(path.join(dir, "missing.secret"))).toMatch(/missing\.secret: No such file/);
    writeFileSync(file, "not hex\n", { mode: 0o600 });
    chmodSync(file, 0o600);
    expect(await bad(file)).toMatch(/exactly 64 (lowercase )?hex digits/);
    expect(await bad(dir)).toMatch(/not a regular file/);
    const usage = spawnSync(vmmBinaryPath(), ["--control", path.join(dir, "c.sock"), "--demo"], { encoding: "utf8" });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/need --secret-file/);
  });
});
