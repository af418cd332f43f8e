// The transport (agent/src/vm/helper-client.ts) against a fake helper on a unix socket: HELLO, ids and
// the replies waiting for them, timeouts, error replies, events, and the end of the connection.
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HelperClient } from "../agent/src/vm/helper-client.js";
import { HelperError } from "../agent/src/vm/helper-errors.js";
import { EventType, Flags, HEADER_SIZE, MAX_PAYLOAD, MsgType, encodeFrame } from "../agent/src/vm/helper-protocol.js";
import { FAKE_SECRET, FAKE_STATUS, fakeHelper, reapHelpers } from "./helpers/helper-vm.js";

afterAll(reapHelpers);

describe("helper client transport", () => {
  it("says HELLO with the protocol version and the VM's secret and keeps the helper's status", async () => {
    const fake = await fakeHelper();
    const c = await HelperClient.connect(fake.path, { secret: FAKE_SECRET });
    expect(fake.requests[0].type).toBe(MsgType.HELLO);
    expect(JSON.parse(fake.requests[0].payload.toString())).toEqual({ version: 2, secret: FAKE_SECRET });
    expect(c.hello).toEqual(FAKE_STATUS);
    c.close();
    await fake.close();
  });

  it("matches replies to requests by id, in whatever order they come", async () => {
    const fake = await fakeHelper((r) => (r.type === MsgType.CONSOLE_READ ? "silence" : undefined));
    const c = await HelperClient.connect(fake.path, { secret: FAKE_SECRET });
    const slow = c.consoleRead(16);
    const fast = c.status();
    expect(await fast).toEqual(FAKE_STATUS);
    const pending = fake.requests.find((r) => r.type === MsgType.CONSOLE_READ)!;
    expect(pending.id).toBe(fake.requests[0].id + 1); // ids count up from HELLO's
    fake.event(MsgType.CONSOLE_READ, Buffer.from("late"), pending.id, Flags.REPLY);
    expect((await slow).toString()).toBe("late");
    c.close();
    await fake.close();
  });

  it("rejects a request the helper never answers with TIMEOUT, and an error reply with its code", async () => {
    const fake = await fakeHelper((r) => (r.type === MsgType.START ? "silence" : r.type === MsgType.RESUME ? { error: { name: "WRONG_STATE", code: 4, message: "not paused" } } : undefined));
    const c = await HelperClient.connect(fake.path, { secret: FAKE_SECRET, requestTimeoutMs: 100 });
    await expect(c.start()).rejects.toMatchObject({ code: "TIMEOUT", message: expect.stringContaining(`type ${MsgType.START}`) });
    await expect(c.resume()).rejects.toMatchObject({ code: "WRONG_STATE", message: "not paused", remoteCode: 4 });
    expect((await c.status()).state).toBe("created"); // still usable
    c.close();
    await fake.close();
  });

  it("refuses a payload above the maximum without sending it", async () => {
    const fake = await fakeHelper();
    const c = await HelperClient.connect(fake.path, { secret: FAKE_SECRET });
    await expect(c.request(MsgType.WRITE_MEM, Buffer.alloc(MAX_PAYLOAD + 1))).rejects.toMatchObject({ code: "TOO_LARGE" });
    expect(fake.requests.map((r) => r.type)).toEqual([MsgType.HELLO]);
    c.close();
    await fake.close();
  });

  it("emits events, console output also on its own", async () => {
    const fake = await fakeHelper();
    const c = await HelperClient.connect(fake.path, { secret: FAKE_SECRET });
    const output: string[] = [];
    c.on("console", (b) => output.push(b.toString()));
    const state = c.waitFor((e) => e.kind === "state", 5000);
    fake.event(EventType.CONSOLE, Buffer.from("boot\n"), 1);
    fake.event(EventType.STATE, Buffer.from(JSON.stringify({ state: "running", reason: "started" })), 2);
    expect(await state).toEqual({ kind: "state", seq: 2, state: "running", reason: "started" });
    expect(output).toEqual(["boot\n"]);
    c.close();
    await fake.close();
  });

  it("returns DIRTY as a byte bitmap", async () => {
    const reply = Buffer.alloc(4 + 8);
    reply.writeUInt32LE(12, 0);
    reply.writeBigUInt64LE((1n << 0n) | (1n << 11n), 4);
    const fake = await fakeHelper((r) => (r.type === MsgType.DIRTY ? { payload: reply } : undefined));
    const c = await HelperClient.connect(fake.path, { secret: FAKE_SECRET });
    const d = await c.dirty();
    expect(d.pages).toBe(12);
    expect([...d.bitmap]).toEqual([0x01, 0x08, 0, 0, 0, 0, 0, 0]);
    c.close();
    await fake.close();
  });

  it("ends once when the helper hangs up: pending and later requests fail with CONNECTION_CLOSED", async () => {
    const fake = await fakeHelper((r) => (r.type === MsgType.PAUSE ? "silence" : undefined));
    const c = await HelperClient.connect(fake.path, { secret: FAKE_SECRET });
    const pending = c.pause();
    let closes = 0;
    c.on("close", () => closes++);
    await new Promise((r) => setTimeout(r, 20));
    fake.hangUp();
    await expect(pending).rejects.toMatchObject({ code: "CONNECTION_CLOSED" });
    const why = await c.ended;
    expect(why).toBeInstanceOf(HelperError);
    expect(why.code).toBe("CONNECTION_CLOSED");
    expect(c.closed).toBe(true);
    await expect(c.status()).rejects.toBe(why);
    c.close();
    expect(closes).toBe(1);
    await fake.close();
  });

  it("drops the connection when the helper sends a length above the maximum, after the frames before it", async () => {
    const fake = await fakeHelper();
    const c = await HelperClient.connect(fake.path, { secret: FAKE_SECRET });
    const events: string[] = [];
    c.on("event", (e) => events.push(e.kind));
    const huge = Buffer.alloc(HEADER_SIZE);
    huge.writeUInt32LE(MAX_PAYLOAD + 1, 0);
    fake.raw(Buffer.concat([encodeFrame(EventType.RESET, Flags.EVENT, 1, Buffer.from('{"source":"i8042"}')), huge]));
    const why = await c.ended;
    expect(why.code).toBe("PROTOCOL");
    expect(why.message).toContain(String(MAX_PAYLOAD + 1));
    expect(events).toEqual(["reset"]);
    await fake.close();
  });

  it("reports a socket that is not there as CONNECT_FAILED", async () => {
    await expect(HelperClient.connect(path.join("/nonexistent-dir", "control.sock"), { secret: FAKE_SECRET })).rejects.toMatchObject({ code: "CONNECT_FAILED" });
  });
});
