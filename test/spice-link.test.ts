// The SPICE server's link stage and sessions, in process, against a Node client that encrypts its ticket
// with the key the server sends: right, wrong, expired, cleared and missing tickets; session ids; bad,
// short, huge and stalled links; and the inputs channel delivering to a scripted display.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import path from "node:path";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { pino } from "pino";
import { TicketBook } from "../agent/src/spice/tickets.js";
import { SpiceServer, type DisplayClientEvent } from "../agent/src/spice/spice-server.js";
import { DisplayDomain } from "../agent/src/display/display-domain.js";
import { EncodePool } from "../agent/src/display/encode-pool.js";
import { ScriptedFramebuffer } from "../agent/src/display/scripted-source.js";
import { notFound } from "../agent/src/errors.js";
import { CHANNEL, LINK_ERR, MSG, MSGC, Writer, linkHeader, linkMess, messageHeader, parseLinkHeader, parseLinkReply } from "../agent/src/spice/wire.js";
import { connect, link, type TestChannel } from "./helpers/spice-client.js";
import { cleanup, tempDir } from "./helpers/agent.js";

const logger = pino({ level: "silent" });

describe("SPICE link stage and sessions", () => {
  let clock = Date.now();
  const tickets = new TicketBook(() => clock);
  const dir = tempDir("spice-link");
  const fb = new ScriptedFramebuffer(path.join(dir, "fb"), 64, 48);
  const pool = new EncodePool(0, logger);
  const display = new DisplayDomain((vmId) => {
    if (vmId !== "vm1") throw notFound(`no VM '${vmId}'`);
    return fb;
  }, pool);
  const events: { vmId: string; type: DisplayClientEvent; reason: string }[] = [];
  const makeServer = (multiClient: boolean) =>
    new SpiceServer({
      tickets,
      display,
      logger,
      vms: { describe: (vmId) => (["vm1", "vm2"].includes(vmId) ? { name: `name-${vmId}` } : undefined), note: (vmId, type, reason) => events.push({ vmId, type, reason }) },
      options: { host: "127.0.0.1", port: 0, multiClient, imageCompression: "auto_glz", linkTimeoutMs: 300, pingIntervalMs: 200 },
    });
  const server = makeServer(false);
  let port = 0;
  const open: TestChannel[] = [];
  const track = (c: TestChannel) => (open.push(c), c);
  const main = async (ticket: string | undefined, p = port) => track(await link({ port: p, channelType: CHANNEL.main, ticket }));

  beforeAll(async () => {
    port = (await server.listen()).port!;
    tickets.set("vm1", "vm1-ticket-secret", 60, "keep");
    tickets.set("vm2", "vm2-ticket-secret", 60, "disconnect");
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
    events.length = 0;
  });
  afterAll(async () => {
    await server.close();
    await display.close();
    tickets.close();
    fb.close();
    cleanup(dir);
  });

  it("links a main channel with the right ticket: INIT carries the session id and the mouse modes", async () => {
    const c = await main("vm1-ticket-secret");
    expect(c.linkResult).toBe(LINK_ERR.OK);
    expect(c.reply!.publicKeyDer.length).toBe(162);
    expect(c.reply!.commonCaps).toEqual([0xb]);
    expect(c.mini).toBe(true);
    const init = await c.until(MSG.MAIN_INIT);
    const id = init.body.readUInt32LE(0);
    expect(id).toBeGreaterThan(0);
    expect([init.body.readUInt32LE(4), init.body.readUInt32LE(8), init.body.readUInt32LE(12)]).toEqual([1, 3, 2]);
    expect(server.clientsOf("vm1").map((s) => s.sessionId)).toEqual([id]);
    expect(events.map((e) => e.type)).toEqual(["DISPLAY_CLIENT_CONNECTED"]);
    c.send(MSGC.MAIN_MOUSE_MODE_REQUEST, new Writer(2).u16(1).done());
    const mode = await c.until(MSG.MAIN_MOUSE_MODE);
    expect([mode.body.readUInt16LE(0), mode.body.readUInt16LE(2)]).toEqual([3, 1]);
  });

  it("refuses wrong, missing and undecryptable tickets with PERMISSION_DENIED, sending no VM data", async () => {
    expect((await main("vm1-ticket-wrong")).linkResult).toBe(LINK_ERR.PERMISSION_DENIED);
    expect((await main(undefined)).linkResult).toBe(LINK_ERR.PERMISSION_DENIED);
    const c = track(await connect({ port }));
    const mess = linkMess({ connectionId: 0, channelType: CHANNEL.main, channelId: 0, commonCaps: [0xb], channelCaps: [] });
    c.socket.write(Buffer.concat([linkHeader(mess.length), mess]));
    await c.read(parseLinkHeader(await c.read(16)).size);
    c.socket.write(Buffer.concat([Buffer.from([1, 0, 0, 0]), randomBytes(128)]));
    expect((await c.read(4)).readUInt32LE(0)).toBe(LINK_ERR.PERMISSION_DENIED);
    await c.closed();
    // Nothing follows the refusal: the connection ends with no bytes after the result.
    await expect(c.read(1, 200)).rejects.toThrow();
    expect(server.clientsOf("vm1")).toEqual([]);
  });

  it("refuses an expired ticket and a cleared one; the expired one names its VM in a REFUSED event", async () => {
    tickets.set("vm1", "vm1-short-ticket", 1, "keep");
    clock += 1500;
    expect((await main("vm1-short-ticket")).linkResult).toBe(LINK_ERR.PERMISSION_DENIED);
    expect(events).toContainEqual(expect.objectContaining({ vmId: "vm1", type: "DISPLAY_CLIENT_REFUSED", reason: expect.stringMatching(/ticket expired/) }));
    tickets.set("vm1", "vm1-ticket-secret", 60, "keep");
    tickets.clear("vm1");
    expect((await main("vm1-ticket-secret")).linkResult).toBe(LINK_ERR.PERMISSION_DENIED);
    tickets.set("vm1", "vm1-ticket-secret", 60, "keep");
  });

  it("other channels link with the session id and its ticket: unknown ids get BAD_CONNECTION_ID only with a live ticket", async () => {
    const m = await main("vm1-ticket-secret");
    const id = (await m.until(MSG.MAIN_INIT)).body.readUInt32LE(0);
    const other = (o: { connectionId: number; ticket: string; channelType?: number }) => link({ port, channelType: CHANNEL.cursor, ...o }).then(track);
    expect((await other({ connectionId: id ^ 1, ticket: "vm1-ticket-secret" })).linkResult).toBe(LINK_ERR.BAD_CONNECTION_ID);
    expect((await other({ connectionId: id ^ 1, ticket: "not-a-ticket" })).linkResult).toBe(LINK_ERR.PERMISSION_DENIED);
    expect((await other({ connectionId: id, ticket: "vm2-ticket-secret" })).linkResult).toBe(LINK_ERR.PERMISSION_DENIED);
    expect((await other({ connectionId: id, ticket: "vm1-ticket-secret", channelType: 5 })).linkResult).toBe(LINK_ERR.CHANNEL_NOT_AVAILABLE);
    const cursor = await other({ connectionId: id, ticket: "vm1-ticket-secret" });
    expect(cursor.linkResult).toBe(LINK_ERR.OK);
    const init = await cursor.until(MSG.CURSOR_INIT);
    expect(init.body[8]).toBe(1); // visible
    // on_expiry=keep: after expiry the session still opens channels with the ticket it linked with.
    tickets.set("vm1", "vm1-ticket-secret", 1, "keep");
    const m2 = await main("vm1-ticket-secret");
    const id2 = (await m2.until(MSG.MAIN_INIT)).body.readUInt32LE(0);
    clock += 1500;
    expect((await other({ connectionId: id2, ticket: "vm1-ticket-secret" })).linkResult).toBe(LINK_ERR.OK);
    expect((await main("vm1-ticket-secret")).linkResult).toBe(LINK_ERR.PERMISSION_DENIED);
    tickets.set("vm1", "vm1-ticket-secret", 60, "keep");
  });

  it("answers a bad magic, an old protocol and an oversized link message with an error reply, then closes", async () => {
    const tryHeader = async (header: Buffer): Promise<number> => {
      const c = track(await connect({ port }));
      c.socket.write(header);
      const h = parseLinkHeader(await c.read(16));
      const code = parseLinkReply(await c.read(h.size)).error;
      await c.closed();
      return code;
    };
    expect(await tryHeader(Buffer.from("GET / HTTP/1.1\r\n"))).toBe(LINK_ERR.INVALID_MAGIC);
    const old = linkHeader(18);
    old.writeUInt32LE(1, 4);
    expect(await tryHeader(old)).toBe(LINK_ERR.VERSION_MISMATCH);
    expect(await tryHeader(linkHeader(0xfffffff0))).toBe(LINK_ERR.INVALID_DATA);
    const lying = linkMess({ connectionId: 0, channelType: 1, channelId: 0, commonCaps: [1], channelCaps: [] });
    lying.writeUInt32LE(1000, 6); // 1000 caps in a 22-byte message
    expect(await tryHeader(Buffer.concat([linkHeader(lying.length), lying]))).toBe(LINK_ERR.INVALID_DATA);
  });

  it("drops a client that stalls during the link, or goes away half-way, and keeps serving others", async () => {
    const stalled = track(await connect({ port }));
    stalled.socket.write(linkHeader(18).subarray(0, 7));
    const started = performance.now();
    await stalled.closed(3000);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    const halfway = net.connect(port, "127.0.0.1");
    await new Promise((r) => halfway.once("connect", r));
    halfway.end(linkHeader(18));
    expect((await main("vm1-ticket-secret")).linkResult).toBe(LINK_ERR.OK);
  });

  it("drops a linked channel that sends an unknown or oversized message; other clients stay", async () => {
    const a = await main("vm1-ticket-secret");
    await a.until(MSG.MAIN_INIT);
    const b = await main("vm2-ticket-secret");
    await b.until(MSG.MAIN_INIT);
    a.socket.write(messageHeader(true, 0n, 4242, 1 << 30));
    await a.closed();
    b.send(MSGC.MAIN_ATTACH_CHANNELS);
    expect((await b.until(MSG.MAIN_CHANNELS_LIST)).body.readUInt32LE(0)).toBe(3);
    expect(server.clientsOf("vm2")).toHaveLength(1);
  });

  it("an expiring on_expiry=disconnect ticket drops the sessions that linked with it", async () => {
    tickets.set("vm2", "vm2-brief-ticket", 1, "disconnect");
    const m = await main("vm2-brief-ticket");
    await m.until(MSG.MAIN_INIT);
    await m.until(MSG.DISCONNECTING, 3000);
    await m.closed();
    expect(events).toContainEqual(expect.objectContaining({ vmId: "vm2", type: "DISPLAY_CLIENT_DISCONNECTED", reason: expect.stringMatching(/the ticket expired/) }));
    tickets.set("vm2", "vm2-ticket-secret", 60, "disconnect");
  });

  it("with multi-client, a second client of a VM does not replace the first", async () => {
    const multi = makeServer(true);
    const p = (await multi.listen()).port!;
    const a = await main("vm1-ticket-secret", p);
    await a.until(MSG.MAIN_INIT);
    const b = await main("vm1-ticket-secret", p);
    await b.until(MSG.MAIN_INIT);
    expect(multi.clientsOf("vm1")).toHaveLength(2);
    expect(a.ended).toBe(false);
    await multi.close();
    await a.closed();
  });

  it("the inputs channel turns keys into set-1 bytes and positions into pointer events, with MOTION_ACK every 4", async () => {
    const m = await main("vm1-ticket-secret");
    const id = (await m.until(MSG.MAIN_INIT)).body.readUInt32LE(0);
    const inputs = track(await link({ port, channelType: CHANNEL.inputs, connectionId: id, ticket: "vm1-ticket-secret" }));
    expect(inputs.linkResult).toBe(0);
    expect(inputs.reply!.channelCaps).toEqual([1]); // KEY_SCANCODE
    await inputs.until(MSG.INPUTS_INIT);
    const key = (type: number, code: number) => inputs.send(type, new Writer(4).u32(code).done());
    key(MSGC.INPUTS_KEY_DOWN, 0x1e);
    key(MSGC.INPUTS_KEY_UP, 0x9e);
    key(MSGC.INPUTS_KEY_DOWN, 0x48e0);
    key(MSGC.INPUTS_KEY_UP, 0xc8e0);
    inputs.send(MSGC.INPUTS_KEY_SCANCODE, Buffer.from([0x2a, 0xaa]));
    const position = (x: number, y: number, buttons: number) => inputs.send(MSGC.INPUTS_MOUSE_POSITION, new Writer(11).u32(x).u32(y).u16(buttons).u8(0).done());
    position(10, 20, 0);
    await new Promise((r) => setTimeout(r, 50));
    position(11, 21, 0);
    await new Promise((r) => setTimeout(r, 50));
    inputs.send(MSGC.INPUTS_MOUSE_PRESS, new Writer(3).u8(3).u16(4).done()); // right button: state has it
    await new Promise((r) => setTimeout(r, 50));
    position(30, 40, 4); // middle of a right drag
    await new Promise((r) => setTimeout(r, 50));
    position(1000, 1000, 4); // clamped to the 64x48 screen
    await inputs.until(MSG.INPUTS_MOUSE_MOTION_ACK);
    await expect.poll(() => fb.pointers.length).toBeGreaterThanOrEqual(4);
    expect(fb.keys).toEqual([0x1e, 0x9e, 0xe0, 0x48, 0xe0, 0xc8, 0x2a, 0xaa]);
    expect(fb.pointers.slice(0, 4)).toEqual([
      { x: 10, y: 20, buttons: 0 },
      { x: 11, y: 21, buttons: 0 },
      { x: 11, y: 21, buttons: 2 },
      { x: 30, y: 40, buttons: 2 },
    ]);
    await expect.poll(() => fb.pointers.at(-1)).toEqual({ x: 63, y: 47, buttons: 2 });
  });

  it("flow control: a client that does not ACK gets at most two windows, and merged updates once it does", async () => {
    const m = await main("vm1-ticket-secret");
    const id = (await m.until(MSG.MAIN_INIT)).body.readUInt32LE(0);
    const d = track(await link({ port, channelType: CHANNEL.display, connectionId: id, ticket: "vm1-ticket-secret" }));
    const setAck = await d.next();
    expect(setAck.type).toBe(MSG.SET_ACK);
    const [generation, window] = [setAck.body.readUInt32LE(0), setAck.body.readUInt32LE(4)];
    expect(window).toBe(20);
    d.send(MSGC.DISPLAY_INIT, new Writer(14).u8(1).u64(0n).u8(0).i32(0).done());
    void (async () => {
      for (;;) await d.next(60_000);
    })().catch(() => undefined);
    // Changes for 2.5 s, faster than the 30 fps pace (more than two windows of updates), with no ACK.
    const until = performance.now() + 2500;
    for (let i = 0; performance.now() < until; i++) {
      fb.fill({ x: i % 64, y: 0, width: 1, height: 48 }, 0x010203 * (i + 1));
      await new Promise((r) => setTimeout(r, 8));
    }
    await new Promise((r) => setTimeout(r, 300));
    const held = d.messages.length;
    expect(held).toBeLessThanOrEqual(1 + 2 * window + 4);
    const viewer = [...(await display.hubOf("vm1"))!.viewers][0];
    expect(viewer.counters.inFlight).toBe(1);
    // Acknowledging releases the held update; the changes made meanwhile come merged, not one by one.
    d.send(MSGC.ACK_SYNC, new Writer(4).u32(generation).done());
    for (let i = 0; i < 20; i++) d.send(MSGC.ACK);
    await expect.poll(() => d.messages.length).toBeGreaterThan(held);
    await new Promise((r) => setTimeout(r, 300));
    // Everything changed while it was held arrives as one update (a few rects), not as the backlog.
    expect(d.messages.length - held).toBeLessThanOrEqual(4);
    expect(viewer.counters.inFlight).toBe(0);
  });

  it("accept() with a transport that pins the VM (the WebSocket bridge) takes only that VM's ticket", async () => {
    const bridge = net.createServer((socket) => server.accept(socket, { kind: "websocket", peer: `${socket.remoteAddress}:${socket.remotePort}`, vmId: "vm2" }));
    await new Promise<void>((r) => bridge.listen(0, "127.0.0.1", r));
    const p = (bridge.address() as net.AddressInfo).port;
    try {
      expect((await main("vm1-ticket-secret", p)).linkResult).toBe(LINK_ERR.PERMISSION_DENIED);
      expect(events).toContainEqual(expect.objectContaining({ vmId: "vm2", type: "DISPLAY_CLIENT_REFUSED" }));
      const ok = await main("vm2-ticket-secret", p);
      expect(ok.linkResult).toBe(LINK_ERR.OK);
      await ok.until(MSG.MAIN_INIT);
      expect(server.clientsOf("vm2")).toEqual([expect.objectContaining({ transport: "websocket" })]);
    } finally {
      bridge.close();
    }
  });

  it("PINGs on the main channel; the PONG's round trip is the session's latency", async () => {
    const c = await main("vm1-ticket-secret");
    await c.until(MSG.MAIN_INIT);
    const ping = await c.until(MSG.PING, 3000);
    expect(server.clientsOf("vm1")[0].latencyMs).toBeUndefined();
    c.send(MSGC.PONG, ping.body.subarray(0, 12));
    await expect.poll(() => server.clientsOf("vm1")[0].latencyMs).toBeGreaterThan(0);
    expect(server.clientsOf("vm1")[0].latencyMs).toBeLessThan(1000);
  });
});
