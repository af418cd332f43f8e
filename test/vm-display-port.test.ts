// VmManager.displayPort and the translation of helper errors inside vm/, over a fake helper (no KVM):
// display/ and api/ only ever see QumraErrors.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { QumraError, type ErrorKind } from "../agent/src/errors.js";
import { createLogger } from "../agent/src/logger.js";
import { HelperClient } from "../agent/src/vm/helper-client.js";
import { HelperError, askHelper, fromHelperError, type HelperErrorCode } from "../agent/src/vm/helper-errors.js";
import { HelperLink, probeFramebuffer, type HelperLauncher } from "../agent/src/vm/helper-link.js";
import { MsgType, type Frame } from "../agent/src/vm/helper-protocol.js";
import { withCallDeadline } from "../agent/src/vm/call-deadline.js";
import { VmManager } from "../agent/src/vm/manager.js";
import { fakeHelper, reapHelpers, type FakeAnswer, type FakeHelper } from "./helpers/helper-vm.js";

afterAll(reapHelpers);

const DISPLAY = { width: 640, height: 480, stride: 2560, format: "bgrx", path: "/tmp/qumra-test-fb", gpa: 0xd0000000, pages: 300, size: 1228800 };
const reply = (body: unknown): FakeAnswer => ({ payload: Buffer.from(JSON.stringify(body)) });
const refuse = (name: string): FakeAnswer => ({ error: { name, message: `refused: ${name}` } });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A manager whose one VM, 'vm1', is served by a fake helper answering with `answer` (DISPLAY_INFO by default). */
async function managerWithFake(answer: (r: Frame) => FakeAnswer | undefined = () => undefined): Promise<{ vms: VmManager; fake: FakeHelper; stand: ChildProcess }> {
  const fake = await fakeHelper((r) => answer(r) ?? (r.type === MsgType.DISPLAY_INFO ? reply(DISPLAY) : undefined));
  // The link supervises a pid: a process of our own stands in for the helper's (kill it to "exit" the helper).
  const stand: ChildProcess = spawn(process.execPath, ["-e", "setTimeout(() => {}, 600000)"], { stdio: "ignore" });
  const launcher: HelperLauncher = {
    async launch(_vmId, _spec, _image, secret, log) {
      const client = await HelperClient.connect(fake.path, { secret: secret.value, pid: stand.pid });
      return new HelperLink(stand.pid!, fake.path, client, await probeFramebuffer(client), secret.value, log);
    },
    reattach: () => Promise.reject(new Error("no re-attach in this test")),
  };
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "qumra-port-"));
  const vms = new VmManager({
    stateDir,
    runtimeDir: stateDir,
    logger: createLogger("fatal"),
    launcher,
    hostLimits: async () => ({ maxVcpus: 8, availableMemory: 1 << 30 }),
  });
  cleanups.push(async () => {
    vms.close();
    stand.kill("SIGKILL");
    await fake.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  await vms.create("vm1", "req-1", { name: "vm1", vcpus: 1, memoryBytes: 32 << 20, boot: { kind: "demo" }, labels: {} });
  return { vms, fake, stand };
}

/** What a helper that exits looks like to the link: its process ends and its socket closes. */
function helperExits(stand: ChildProcess, fake: FakeHelper): void {
  stand.kill("SIGKILL");
  fake.hangUp();
}

async function qumraError(p: Promise<unknown> | (() => unknown)): Promise<QumraError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(QumraError);
    return err as QumraError;
  }
  throw new Error("expected a QumraError, got success");
}

describe("helper errors leave vm/ as QumraErrors", () => {
  it("maps each helper error code to the agent's kind, with the helper's message", () => {
    const kinds: [HelperErrorCode, ErrorKind][] = [
      ["INVALID_ARGUMENT", "invalid-argument"],
      ["BAD_MESSAGE", "invalid-argument"],
      ["TOO_LARGE", "invalid-argument"],
      ["WRONG_STATE", "failed-precondition"],
      ["AUTH", "failed-precondition"],
      ["OUT_OF_RANGE", "out-of-range"],
      ["TIMEOUT", "deadline-exceeded"],
      ["CONNECTION_CLOSED", "unavailable"],
      ["CONNECT_FAILED", "unavailable"],
      ["INTERNAL", "internal"],
      ["UNKNOWN_TYPE", "internal"],
      ["PROTOCOL", "internal"],
    ];
    for (const [code, kind] of kinds) {
      const err = fromHelperError(new HelperError(code, "it said no")) as QumraError;
      expect(err).toBeInstanceOf(QumraError);
      // A timeout is no answer at all: its message (naming the helper's pid) stands as it is.
      expect([err.kind, err.message]).toEqual([kind, code === "TIMEOUT" ? "it said no" : "the VM's helper answered: it said no"]);
      expect((err.cause as HelperError).code).toBe(code);
    }
    const other = new Error("not the helper's");
    expect(fromHelperError(other)).toBe(other);
  });

  it("askHelper converts a rejected exchange and passes results through", async () => {
    expect(await askHelper(async () => 7)).toBe(7);
    expect((await qumraError(askHelper(() => Promise.reject(new HelperError("OUT_OF_RANGE", "past RAM"))))).kind).toBe("out-of-range");
  });

  it("manager calls answer with QumraErrors", async () => {
    const { vms } = await managerWithFake((r) => (r.type === MsgType.START ? refuse("WRONG_STATE") : r.type === MsgType.WRITE_MEM ? refuse("OUT_OF_RANGE") : undefined));
    const start = await qumraError(vms.start("vm1"));
    expect([start.kind, start.message]).toEqual(["failed-precondition", "the VM's helper answered: refused: WRONG_STATE"]);
    expect(vms.get("vm1").state).toBe("CREATED");
    const write = await qumraError(vms.writeMemory("vm1", 0x8000, Buffer.alloc(8)));
    expect(write.kind).toBe("out-of-range");
  });
});

describe("VmManager.displayPort", () => {
  it("refuses an unknown VM with not-found", async () => {
    const { vms } = await managerWithFake();
    expect((await qumraError(() => vms.displayPort("nope", "show the display of"))).kind).toBe("not-found");
  });

  it("gives the geometry, the dirty log as bytes and input, over the VM's helper", async () => {
    const dirty = Buffer.alloc(4 + 5 * 8);
    dirty.writeUInt32LE(300, 0);
    dirty.writeBigUInt64LE(1n << 9n, 4);
    const { vms, fake } = await managerWithFake((r) => (r.type === MsgType.DIRTY ? { payload: dirty } : r.type === MsgType.KEYBOARD ? reply({ accepted: 2 }) : undefined));
    const port = vms.displayPort("vm1", "show the display of");
    expect(await port.info()).toEqual({ width: 640, height: 480, stride: 2560, format: "bgrx", path: "/tmp/qumra-test-fb", pages: 300 });
    const d = await port.dirty();
    expect(d.pages).toBe(300);
    expect(d.bitmap.length).toBe(40);
    expect(d.bitmap[1]).toBe(0x02);
    await port.pointer(10, 20, 1);
    expect(await port.keyboard(Uint8Array.from([0x1e, 0x9e]))).toBe(2);
    const sent = fake.requests.filter((r) => r.type === MsgType.POINTER || r.type === MsgType.KEYBOARD);
    expect(JSON.parse(sent[0].payload.toString())).toEqual({ x: 10, y: 20, buttons: 1 });
    expect([...sent[1].payload]).toEqual([0x1e, 0x9e]);
  });

  it("turns the helper's refusals into QumraErrors", async () => {
    const { vms } = await managerWithFake((r) => (r.type === MsgType.DIRTY ? refuse("INTERNAL") : r.type === MsgType.POINTER ? refuse("BAD_MESSAGE") : undefined));
    const port = vms.displayPort("vm1", "show the display of");
    const dirty = await qumraError(port.dirty());
    expect([dirty.kind, dirty.message]).toEqual(["internal", "the VM's helper answered: refused: INTERNAL"]);
    expect((await qumraError(port.pointer(1, 1, 0))).kind).toBe("invalid-argument");
  });

  it("refuses a helper without a framebuffer device with failed-precondition", async () => {
    const { vms } = await managerWithFake((r) => (r.type === MsgType.DISPLAY_INFO ? refuse("UNKNOWN_TYPE") : undefined));
    const err = await qumraError(() => vms.displayPort("vm1", "take a screenshot of"));
    expect(err.kind).toBe("failed-precondition");
    expect(err.message).toContain("no framebuffer");
  });

  it("a helper that does not answer fails the call before the client's deadline, naming its pid, and shows as hung", async () => {
    const { vms, stand } = await managerWithFake((r) => (r.type === MsgType.READ_MEM ? "silence" : undefined));
    expect(vms.hang("vm1")).toBeUndefined();
    const err = await qumraError(withCallDeadline(Date.now() + 1000, () => vms.readMemory("vm1", 0x8000, 8)));
    expect(err.kind).toBe("deadline-exceeded");
    expect(err.message).toMatch(new RegExp(`^helper pid ${stand.pid} did not answer in 0\\.[78] s \\(stopped\\? hung\\?\\)`));
    expect(vms.hang("vm1")).toMatchObject({ stopped: false, reason: expect.stringMatching(new RegExp(`^helper pid ${stand.pid} has not answered since`)) });
  });

  it("ends when the helper exits; later calls are unavailable", async () => {
    const { vms, fake, stand } = await managerWithFake();
    const port = vms.displayPort("vm1", "show the display of");
    helperExits(stand, fake);
    expect(await port.ended).toMatch(/connection ended \(helper process \d+ was killed \(SIGKILL or a crash\)/);
    expect((await qumraError(port.dirty())).kind).toBe("unavailable");
  });

  it("keeps working when the connection drops but the helper runs: the link connects again with the secret", async () => {
    const { vms, fake } = await managerWithFake();
    const port = vms.displayPort("vm1", "show the display of");
    const hellos = () => fake.requests.filter((r) => r.type === MsgType.HELLO);
    const secret = JSON.parse(hellos()[0].payload.toString()).secret as string;
    expect(secret).toMatch(/^[0-9a-f]{64}$/);
    fake.hangUp();
    // The port follows the link's current connection: a call succeeds once the link is back.
    let info;
    for (let i = 0; i < 200 && !info; i++) info = await port.info().catch(() => new Promise((r) => setTimeout(r, 25)).then(() => undefined));
    expect(info?.width).toBe(640);
    expect(hellos().length).toBe(2);
    expect(JSON.parse(hellos()[1].payload.toString()).secret).toBe(secret);
    expect(vms.get("vm1").state).toBe("CREATED");
  });

  it("refuses a VM that is no longer live with failed-precondition", async () => {
    let setup: Awaited<ReturnType<typeof managerWithFake>> | undefined;
    setup = await managerWithFake((r) => {
      if (r.type !== MsgType.STOP) return undefined;
      setImmediate(() => setup && helperExits(setup.stand, setup.fake)); // the helper exits after its STOP reply
      return reply({ forced: true, exitStatus: 3 });
    });
    await setup.vms.stop("vm1", { force: true, timeoutMs: 0 });
    expect(setup.vms.get("vm1").state).toBe("STOPPED");
    expect((await qumraError(() => setup.vms.displayPort("vm1", "show the display of"))).kind).toBe("failed-precondition");
  });
});
