// The --http listener on its own, in process: real sockets, real WebSocket clients (ws), an echoing or
// flooding acceptor in place of the SPICE server. Routes, refusals, bad frames, backpressure, TLS, shutdown.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import net from "node:net";
import tls from "node:tls";
import https from "node:https";
import { readFileSync } from "node:fs";
import { Writable, type Duplex } from "node:stream";
import { WebSocket } from "ws";
import { HttpListener, type HttpListenerOptions } from "../agent/src/http/http-server.js";
import { withWebSocketPath } from "../agent/src/http/agent-http.js";
import type { SpiceAcceptor, SpiceTransport } from "../agent/src/http/spice-acceptor.js";
import { loadConfig, type AgentConfig } from "../agent/src/config.js";
import { createLogger } from "../agent/src/logger.js";
import { cleanup, tempDir } from "./helpers/agent.js";
import { makePki, type TestPki } from "./helpers/pki.js";

interface Accepted {
  stream: Duplex;
  transport: SpiceTransport;
  closed: Promise<void>;
}

/** An acceptor that records what it gets and hands each stream to `serve` (default: echo). */
function recorder(serve: (stream: Duplex) => void = (s) => s.pipe(s)): SpiceAcceptor & { accepted: Accepted[] } {
  const accepted: Accepted[] = [];
  return {
    accepted,
    accept(stream, transport) {
      const a = { stream, transport, closed: new Promise<void>((resolve) => stream.once("close", () => resolve())) };
      accepted.push(a);
      serve(stream);
    },
  };
}

const started: HttpListener[] = [];
let logs = "";
const sink = new Writable({ write: (chunk, _e, cb) => ((logs += chunk.toString()), cb()) });

async function listen(options: Partial<HttpListenerOptions> = {}): Promise<{ listener: HttpListener; port: number }> {
  const listener = await HttpListener.start({ host: "127.0.0.1", port: 0, logger: createLogger("debug", sink), ...options });
  started.push(listener);
  return { listener, port: Number(listener.address.split(":").pop()) };
}

/** Opens a WebSocket; resolves once open. */
function open(url: string, protocols: string[] = ["binary"], options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** A WebSocket handshake the server must refuse: its status and body. */
function refusal(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ["binary"]);
    ws.once("open", () => reject(new Error(`${url} opened`)));
    ws.once("error", () => {});
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
  });
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => ws.once("message", (data: Buffer, isBinary) => resolve({ data, isBinary })));
}

/** Sends `bytes` on a fresh TCP connection; resolves with everything the server sent before closing. */
function rawExchange(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(bytes));
    let got = "";
    s.on("data", (d: Buffer) => (got += d.toString("latin1")));
    s.on("close", () => resolve(got));
    s.on("error", reject);
    s.setTimeout(5000, () => reject(new Error(`no close after ${JSON.stringify(bytes.toString())}; got ${JSON.stringify(got)}`)));
  });
}

/** A hand-made WebSocket handshake on a raw socket (so the test controls reading and framing); resolves after the 101. */
function rawWebSocket(port: number, path: string): Promise<{ socket: net.Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n`),
    );
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.pause();
      const status = head.subarray(0, end).toString("latin1");
      if (!status.startsWith("HTTP/1.1 101")) return reject(new Error(`handshake refused: ${status}`));
      resolve({ socket, rest: head.subarray(end + 4) });
    };
    socket.on("data", onData);
    socket.on("error", reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(async () => {
  await Promise.all(started.splice(0).map((l) => l.close()));
});

describe("the --http listener: routes and refusals", () => {
  it("a binary WebSocket on /spice/VM_ID reaches the acceptor as a byte stream, pinned to the vm, echoed both ways", async () => {
    const spice = recorder();
    const { port } = await listen({ spice });
    const ws = await open(`ws://127.0.0.1:${port}/spice/vm-1?ignored=1`);
    expect(ws.protocol).toBe("binary");
    const [a] = spice.accepted;
    expect(a.transport).toEqual({ kind: "websocket", peer: `127.0.0.1:${(ws as unknown as { _socket: net.Socket })._socket.localPort}`, vmId: "vm-1" });
    const echoed = nextMessage(ws);
    ws.send(Buffer.from("REDQ\x02\x00\x00\x00"));
    const { data, isBinary } = await echoed;
    expect([isBinary, data.toString("latin1")]).toEqual([true, "REDQ\x02\x00\x00\x00"]);
    // A client that offers no subprotocol is served too (no protocol in the answer).
    const plain = await open(`ws://127.0.0.1:${port}/spice/vm-2`, []);
    expect(plain.protocol).toBe("");
    expect(spice.accepted[1].transport.vmId).toBe("vm-2");
    ws.close();
    plain.close();
    await Promise.all(spice.accepted.map((x) => x.closed));
  });

  it("bad paths and vm ids are refused before the handshake: 404, 400 naming the rule; no acceptor: 503", async () => {
    const spice = recorder();
    const { port } = await listen({ spice });
    expect(await refusal(`ws://127.0.0.1:${port}/websockify`)).toEqual({ status: 404, body: "not found: SPICE WebSockets are at /spice/VM_ID\n" });
    expect(await refusal(`ws://127.0.0.1:${port}/`)).toMatchObject({ status: 404 });
    for (const bad of ["Bad_Id", "", "vm-1/extra", "-x", "%76m"]) {
      const r = await refusal(`ws://127.0.0.1:${port}/spice/${bad}`);
      expect(r.status, bad).toBe(400);
      expect(r.body, bad).toMatch(/vm_id '.*' is invalid: use 1 to 63 characters/);
    }
    expect(spice.accepted).toHaveLength(0);
    const none = await listen();
    expect(await refusal(`ws://127.0.0.1:${none.port}/spice/vm-1`)).toEqual({ status: 503, body: "this agent serves no SPICE\n" });
  });

  it("a plain GET gets 404, or 426 on a SPICE path; a non-WebSocket upgrade gets 400", async () => {
    const { port } = await listen({ spice: recorder() });
    const root = await fetch(`http://127.0.0.1:${port}/`);
    expect([root.status, await root.text()]).toEqual([404, "not found\n"]);
    const spicePath = await fetch(`http://127.0.0.1:${port}/spice/vm-1`);
    expect(spicePath.status).toBe(426);
    expect(await spicePath.text()).toMatch(/SPICE WebSocket endpoint/);
    const h2c = await rawExchange(port, "GET /spice/vm-1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
    expect(h2c).toMatch(/^HTTP\/1\.1 400 /);
  });

  it("garbage on the port gets 400 and a close; the listener serves on", async () => {
    const spice = recorder();
    const { port } = await listen({ spice });
    expect(await rawExchange(port, "\x16\x03\x01\x00\xa5garbage\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    expect(await rawExchange(port, "GET / HTTP/9.9 what\r\n\r\n")).toMatch(/^HTTP\/1\.1 400/);
    const ws = await open(`ws://127.0.0.1:${port}/spice/vm-1`);
    const echoed = nextMessage(ws);
    ws.send(Buffer.from([1, 2, 3]));
    expect([...(await echoed).data]).toEqual([1, 2, 3]);
    ws.close();
  });
});

describe("the --http listener: bad frames close only their own socket", () => {
  it("a text frame closes that WebSocket with 1003 and ends its stream; another WebSocket keeps working", async () => {
    const spice = recorder();
    const { port } = await listen({ spice });
    const good = await open(`ws://127.0.0.1:${port}/spice/vm-1`);
    const bad = await open(`ws://127.0.0.1:${port}/spice/vm-1`);
    const closed = closeOf(bad);
    bad.send("hello");
    expect(await closed).toEqual({ code: 1003, reason: "SPICE over WebSocket takes binary frames only" });
    await spice.accepted[1].closed;
    const echoed = nextMessage(good);
    good.send(Buffer.from("still here"));
    expect((await echoed).data.toString()).toBe("still here");
    expect(spice.accepted[0].stream.destroyed).toBe(false);
    good.close();
  });

  it("a malformed frame (unknown opcode) gets a close frame 1002 and the socket ends; the stream closes", async () => {
    const spice = recorder();
    const { port } = await listen({ spice });
    const { socket } = await rawWebSocket(port, "/spice/vm-1");
    const got: Buffer[] = [];
    socket.on("data", (d: Buffer) => got.push(d));
    socket.resume();
    const ended = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write(Buffer.from([0x83, 0x80, 1, 2, 3, 4])); // FIN, opcode 3 (reserved), masked, empty
    await ended;
    const frame = Buffer.concat(got);
    expect(frame[0]).toBe(0x88); // close
    expect(frame.readUInt16BE(2)).toBe(1002);
    await spice.accepted[0].closed;
  });

  it("a frame over maxPayload gets 1009", async () => {
    const spice = recorder();
    const { port } = await listen({ spice, maxPayload: 4096 });
    const ws = await open(`ws://127.0.0.1:${port}/spice/vm-1`);
    const closed = closeOf(ws);
    ws.send(Buffer.alloc(4097));
    expect((await closed).code).toBe(1009);
    await spice.accepted[0].closed;
  });
});

describe("the --http listener: backpressure and ends", () => {
  const CHUNK = 64 * 1024;

  it("a client that never reads stops the writer: the bridge buffers a bounded amount, then resumes when the client reads", async () => {
    let taken = 0; // bytes whose write() the bridge has called back, i.e. has passed on
    let paused = false;
    const spice = recorder((stream) => {
      const chunk = Buffer.alloc(CHUNK, 0x5a);
      let written = 0;
      const pump = (): void => {
        // The cap only turns a bridge without backpressure into a failed assertion rather than an out-of-memory crash.
        while (!stream.destroyed && (written += CHUNK) < 1 << 30) {
          if (!stream.write(chunk, () => (taken += CHUNK))) {
            paused = true;
            stream.once("drain", () => ((paused = false), pump()));
            return;
          }
        }
      };
      pump();
    });
    const { port } = await listen({ spice });
    const { socket } = await rawWebSocket(port, "/spice/vm-1"); // paused: reads nothing
    await sleep(1500);
    const stalled = taken;
    await sleep(500);
    expect(taken).toBe(stalled); // nothing more gets through
    expect(paused).toBe(true);
    // Loopback socket buffers hold a few MiB; an unbounded bridge would have taken gigabytes by now.
    expect(stalled).toBeLessThan(32 << 20);
    console.log(`a client that never reads: the bridge passed on ${(stalled / 1048576).toFixed(1)} MiB, then stopped`);
    expect(spice.accepted[0].stream.writableLength).toBeLessThanOrEqual(2 * CHUNK);
    socket.on("data", () => {});
    socket.resume();
    await sleep(300);
    expect(taken).toBeGreaterThan(stalled + (4 << 20));
    socket.destroy();
    await spice.accepted[0].closed;
  });

  it("an acceptor that does not read pauses the WebSocket: the client's sends back up, nothing piles up in the bridge", async () => {
    const spice = recorder(() => {}); // never reads
    const { port } = await listen({ spice });
    const ws = await open(`ws://127.0.0.1:${port}/spice/vm-1`);
    const total = 32 << 20;
    for (let sent = 0; sent < total; sent += CHUNK) ws.send(Buffer.alloc(CHUNK, 1));
    await sleep(1500);
    const { stream } = spice.accepted[0];
    expect(stream.readableLength).toBeLessThanOrEqual(16 * 1024 + CHUNK);
    expect(ws.bufferedAmount).toBeGreaterThan(total / 2); // most of it still waits in the client
    let read = 0;
    stream.on("data", (d: Buffer) => (read += d.length));
    const deadline = Date.now() + 20_000;
    while (read < total && Date.now() < deadline) await sleep(50);
    expect(read).toBe(total);
    ws.close();
  });

  it("the acceptor ending its stream sends what it wrote, then closes the WebSocket with 1000", async () => {
    const spice = recorder((s) => s.end(Buffer.from("bye")));
    const { port } = await listen({ spice });
    const ws = new WebSocket(`ws://127.0.0.1:${port}/spice/vm-1`, ["binary"]);
    const message = nextMessage(ws);
    const closed = closeOf(ws);
    expect((await message).data.toString()).toBe("bye");
    expect((await closed).code).toBe(1000);
    await spice.accepted[0].closed;
  });

  it("an acceptor that throws gets its WebSocket closed with 1011; the listener serves on", async () => {
    let first = true;
    const { port } = await listen({
      spice: {
        accept(stream) {
          if (first) {
            first = false;
            throw new Error("no such VM session");
          }
          stream.pipe(stream);
        },
      },
    });
    const ws = new WebSocket(`ws://127.0.0.1:${port}/spice/vm-1`, ["binary"]);
    expect(await closeOf(ws)).toEqual({ code: 1011, reason: "SPICE server error" });
    const again = await open(`ws://127.0.0.1:${port}/spice/vm-1`);
    again.close();
  });

  it("close(): open WebSockets get 1001, their streams close, the port stops accepting", async () => {
    const spice = recorder();
    const { listener, port } = await listen({ spice });
    const sockets = await Promise.all([open(`ws://127.0.0.1:${port}/spice/vm-1`), open(`ws://127.0.0.1:${port}/spice/vm-2`)]);
    const idle = net.connect(port, "127.0.0.1"); // an HTTP connection that never sends a request
    await new Promise((r) => idle.once("connect", r));
    const closes = sockets.map(closeOf);
    await listener.close();
    started.splice(started.indexOf(listener), 1);
    for (const c of await Promise.all(closes)) expect(c).toEqual({ code: 1001, reason: "qumra-agent is shutting down" });
    await Promise.all(spice.accepted.map((a) => a.closed));
    expect(idle.destroyed || (await new Promise((r) => idle.once("close", r)), true)).toBe(true);
    await expect(open(`ws://127.0.0.1:${port}/spice/vm-1`)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe("the --http listener over TLS", () => {
  let dir: string;
  let pki: TestPki;
  beforeAll(() => {
    dir = tempDir("http-tls");
    pki = makePki(dir);
  });
  afterAll(() => cleanup(dir));

  it("serves WSS with the agent's certificate: transport websocket+tls; HTTPS 404; plaintext refused", async () => {
    const spice = recorder();
    const { port } = await listen({ spice, tls: { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) } });
    const ca = readFileSync(pki.caCert);
    const ws = await open(`wss://127.0.0.1:${port}/spice/vm-1`, ["binary"], { ca });
    expect(spice.accepted[0].transport).toMatchObject({ kind: "websocket+tls", vmId: "vm-1" });
    const echoed = nextMessage(ws);
    ws.send(Buffer.from("over tls"));
    expect((await echoed).data.toString()).toBe("over tls");
    ws.close();

    const status = await new Promise<number>((resolve, reject) => https.get(`https://127.0.0.1:${port}/`, { ca }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on("error", reject));
    expect(status).toBe(404);
    // An untrusted client (no CA) fails the handshake; plain HTTP on the TLS port gets nothing served.
    await expect(open(`wss://127.0.0.1:${port}/spice/vm-1`)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    expect(await rawExchange(port, "GET /spice/vm-1 HTTP/1.1\r\nHost: x\r\n\r\n")).not.toMatch(/^HTTP\/1\.1 (101|200)/);
    expect(spice.accepted).toHaveLength(1);
    const garbage = await new Promise<string>((resolve) => {
      const s = tls.connect({ port, host: "127.0.0.1", ca, servername: "localhost" }, () => s.write("garbage\r\n\r\n"));
      let got = "";
      s.on("data", (d: Buffer) => (got += d.toString()));
      s.on("close", () => resolve(got));
      s.on("error", () => resolve(got));
    });
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
  });
});

describe("the SPICE address with --http", () => {
  const config = (argv: string[]) => loadConfig(argv, {}) as AgentConfig;
  const address = { host: "127.0.0.1", port: 5900 };

  it("names /spice/VM_ID as the WebSocket path when --http is on, and nothing otherwise", () => {
    expect(withWebSocketPath(config(["--http", "127.0.0.1:0"]), () => address)()?.websocketPath?.("web1")).toBe("/spice/web1");
    expect(withWebSocketPath(config(["--http", "127.0.0.1:0"]), () => address)()).toMatchObject(address);
    expect(withWebSocketPath(config([]), () => address)()?.websocketPath).toBeUndefined();
    expect(withWebSocketPath(config(["--http", "127.0.0.1:0"]), () => undefined)()).toBeUndefined();
  });
});
