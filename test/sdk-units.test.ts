// The client SDK (qumra/client) piece by piece: error mapping, deadlines, which calls are retried and
// with which request id, and WatchVms resuming. Against grpc-js servers written here that fail on
// purpose, and against real agents (restarted, or behind a proxy that cuts the connection).
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import * as grpc from "@grpc/grpc-js";
import {
  connect,
  QumraClientError,
  NotFoundError,
  InvalidArgumentError,
  AlreadyExistsError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  ResourceExhaustedError,
  toClientError,
  VmEventType,
  VmState,
  type QumraClient,
  type WatchItem,
} from "qumra/client";
import { Vm, VmEvent, VmServiceService, type CreateVmRequest } from "../agent/src/gen/qumra/v1/vm.js";
import { cleanup, discardAgent, runCli, startAgent, tempDir, type RunningAgent } from "./helpers/agent.js";
import { hasKvm } from "./helpers/kvm.js";
import { demoSpec } from "./helpers/vm.js";
import { freePort } from "./helpers/ports.js";
import { startTcpProxy } from "./helpers/tcp-proxy.js";
import { makePki } from "./helpers/pki.js";
import { readFileSync } from "node:fs";

/** A VmService that answers as the test says (methods it does not implement answer UNIMPLEMENTED). */
async function fakeAgent(impl: grpc.UntypedServiceImplementation): Promise<{ address: string; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(VmServiceService, impl);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

const status = (code: grpc.status, details: string) => Object.assign(new Error(details), { code, details }) as grpc.ServiceError;
const vmOf = (vmId: string, requestId: string, state = VmState.VM_STATE_CREATED) => Vm.fromPartial({ vmId, requestId, state });
const event = (sequence: number, instanceId: string, type = VmEventType.VM_EVENT_TYPE_STATE_CHANGED, vmId = "a") =>
  VmEvent.fromPartial({ sequence: BigInt(sequence), instanceId, type, vmId, state: VmState.VM_STATE_RUNNING });

const clients: QumraClient[] = [];
const fakes: { close(): Promise<void> }[] = [];
const open = (options: Parameters<typeof connect>[0]) => {
  const c = connect(options);
  clients.push(c);
  return c;
};
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const f of fakes.splice(0)) await f.close();
});

/** Collects a watch's items until `done` says enough (or `limit` items), then closes it. */
async function collectWatch(watch: AsyncIterable<WatchItem> & { close(): void }, done: (items: WatchItem[]) => boolean, limit = 1000): Promise<WatchItem[]> {
  const items: WatchItem[] = [];
  for await (const item of watch) {
    items.push(item);
    if (done(items) || items.length >= limit) break;
  }
  watch.close();
  return items;
}

describe("errors", () => {
  test("every gRPC code becomes its class, keeping code, details and method", () => {
    const expected: [grpc.status, new (...a: never[]) => QumraClientError][] = [
      [grpc.status.INVALID_ARGUMENT, InvalidArgumentError],
      [grpc.status.NOT_FOUND, NotFoundError],
      [grpc.status.ALREADY_EXISTS, AlreadyExistsError],
      [grpc.status.PERMISSION_DENIED, PermissionDeniedError],
      [grpc.status.UNAUTHENTICATED, UnauthenticatedError],
      [grpc.status.RESOURCE_EXHAUSTED, ResourceExhaustedError],
      [grpc.status.FAILED_PRECONDITION, FailedPreconditionError],
      [grpc.status.UNAVAILABLE, UnavailableError],
      [grpc.status.DEADLINE_EXCEEDED, DeadlineExceededError],
      [grpc.status.INTERNAL, InternalError],
      [grpc.status.UNKNOWN, InternalError],
      [grpc.status.DATA_LOSS, InternalError],
    ];
    for (const [code, Class] of expected) {
      const e = toClientError(status(code, `why ${code}`), "VmService/GetVm");
      expect(e).toBeInstanceOf(Class);
      expect(e).toBeInstanceOf(QumraClientError);
      expect(e.code).toBe(code);
      expect(e.details).toBe(`why ${code}`);
      expect(e.method).toBe("VmService/GetVm");
      expect(e.message).toBe(`VmService/GetVm: ${grpc.status[code]}: why ${code}`);
    }
    // UNAUTHENTICATED is a kind of permission refusal; anything that is not a gRPC error is INTERNAL-ish.
    expect(toClientError(status(grpc.status.UNAUTHENTICATED, ""), "m")).toBeInstanceOf(PermissionDeniedError);
    const plain = toClientError(new TypeError("boom"), "m");
    expect(plain).toBeInstanceOf(InternalError);
    expect(plain.code).toBe(grpc.status.UNKNOWN);
  });

  test("connect() refuses options it cannot use, naming them", () => {
    expect(() => connect({ address: "127.0.0.1:1", socket: "/x" })).toThrow(/address or socket, not both/);
    expect(() => connect({ address: "no-port" })).toThrow(/expected HOST:PORT/);
    expect(() => connect({ socket: "" })).toThrow(/socket is empty/);
    expect(() => connect({ address: "127.0.0.1:1", tls: { cert: Buffer.from("x") } })).toThrow(/both tls.cert and tls.key/);
    expect(() => connect({ address: "127.0.0.1:1", tls: { ca: "/nonexistent/ca.pem" } })).toThrow(/cannot read tls.ca \/nonexistent\/ca.pem/);
    expect(() => connect({ address: "127.0.0.1:1", defaultDeadlineMs: 0 })).toThrow(/defaultDeadlineMs 0/);
  });

  test("nothing listening: UnavailableError, after the retries a read is allowed", async () => {
    const port = await freePort();
    const c = open({ address: `127.0.0.1:${port}`, retry: { retries: 2, backoffMs: 10, maxBackoffMs: 20 } });
    const err = await c.getHost().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as UnavailableError).method).toBe("HostService/GetHost");
  });

  describe("a real agent's refusals", () => {
    let agent: RunningAgent;
    beforeAll(async () => {
      agent = await startAgent();
    });
    afterAll(async () => {
      await discardAgent(agent);
    });

    test("NOT_FOUND, INVALID_ARGUMENT, PERMISSION_DENIED arrive typed, with the agent's message", async () => {
      const c = open({ address: agent.address });
      const missing = await c.getVm("no-such-vm").catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(NotFoundError);
      expect((missing as NotFoundError).details).toMatch(/no-such-vm/);
      const bad = await c.createVm({ vmId: "Bad_Id!", spec: demoSpec("x") }).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(InvalidArgumentError);
      expect((bad as InvalidArgumentError).code).toBe(grpc.status.INVALID_ARGUMENT);
      const ro = open({ socket: agent.readOnlySocket! });
      expect((await ro.getHost()).agent?.instanceId).toBeTruthy();
      const denied = await ro.createVm({ vmId: "ro-1", spec: demoSpec("ro-1") }).catch((e: unknown) => e);
      expect(denied).toBeInstanceOf(PermissionDeniedError);
      expect((denied as PermissionDeniedError).details).toMatch(/viewer/);
      // The request ids the SDK sends are the ones the audit trail records, refusals included.
      await ro.stopVm("ro-2", {}, { requestId: "sdk-audit-1" }).catch(() => undefined);
      const records = [];
      for await (const r of c.readAudit({ vmId: "ro-2" })) records.push(r);
      expect(records.map((r) => [r.method, r.requestId, r.code])).toEqual([["/qumra.v1.VmService/StopVm", "sdk-audit-1", "PERMISSION_DENIED"]]);
      // A watch the agent refuses (bad heartbeat) is not reopened: the iterator throws.
      const watch = c.watchVms({ heartbeatMs: 5 });
      await expect(collectWatch(watch, () => false)).rejects.toBeInstanceOf(InvalidArgumentError);
    });
  });
});

describe("TLS", () => {
  test("mutual TLS with paths or buffers; a client without a certificate, or one of another CA, is refused (UnavailableError)", async () => {
    const pki = makePki(tempDir("sdk-pki"));
    const agent = await startAgent(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-ca", pki.caCert]);
    try {
      const byPath = open({ address: agent.address, tls: { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey } });
      expect((await byPath.getHost()).agent?.instanceId).toBeTruthy();
      const byBuffer = open({ address: agent.address, tls: { ca: readFileSync(pki.caCert), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) } });
      expect(await byBuffer.listVms()).toEqual([]);
      const noCert = open({ address: agent.address, tls: { ca: pki.caCert }, retry: { retries: 0 } });
      await expect(noCert.getHost()).rejects.toBeInstanceOf(UnavailableError);
      const stranger = open({ address: agent.address, tls: { ca: pki.caCert, cert: pki.strangerCert, key: pki.strangerKey }, retry: { retries: 0 } });
      await expect(stranger.getHost()).rejects.toBeInstanceOf(UnavailableError);
      // serverName is the name checked against the agent's certificate (it names 127.0.0.1 and localhost).
      const named = open({ address: agent.address, tls: { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey, serverName: "localhost" } });
      expect((await named.getHost()).agent?.instanceId).toBeTruthy();
      const misnamed = open({ address: agent.address, tls: { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey, serverName: "wrong.example" }, retry: { retries: 0 } });
      await expect(misnamed.getHost()).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      await agent.stop();
      cleanup(agent.stateDir, agent.runtimeDir, pki.dir);
    }
  });
});

describe("deadlines", () => {
  test("each attempt has the call's deadline (or the client's default); a read that times out is retried, then DeadlineExceededError", async () => {
    const deadlines: number[] = [];
    let attempts = 0;
    const fake = await fakeAgent({
      getVm: (call: grpc.ServerUnaryCall<unknown, unknown>) => {
        attempts++;
        const d = call.getDeadline();
        deadlines.push(d instanceof Date ? d.getTime() : d);
        // Never answers.
      },
    });
    fakes.push(fake);
    const c = open({ address: fake.address, defaultDeadlineMs: 60_000, retry: { retries: 2, backoffMs: 10, maxBackoffMs: 20 } });
    const err = await c.getVm("a", { deadlineMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(attempts).toBe(3);
    const once = await c.getVm("a", { deadlineMs: 200, retry: false }).catch((e: unknown) => e);
    expect(once).toBeInstanceOf(DeadlineExceededError);
    expect(attempts).toBe(4);
    // The default deadline reaches the server too (cancelled here rather than waited for).
    const abort = new AbortController();
    const pending = c.getVm("a", { signal: abort.signal }).catch((e: unknown) => e);
    while (attempts < 5) await new Promise((r) => setTimeout(r, 10));
    abort.abort();
    expect((await pending as QumraClientError).code).toBe(grpc.status.CANCELLED);
    expect(deadlines.every(Number.isFinite)).toBe(true);
    // 200 ms deadlines against a 60 s default: the last one is far later than the first four.
    expect(Math.max(...deadlines.slice(0, 4))).toBeLessThan(deadlines[4] - 30_000);
  });

  test("writes that are not safe to repeat are tried once", async () => {
    let attempts = 0;
    const fake = await fakeAgent({
      writeMemory: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        attempts++;
        cb(status(grpc.status.UNAVAILABLE, "helper restarting"));
      },
    });
    fakes.push(fake);
    const c = open({ address: fake.address, retry: { retries: 5, backoffMs: 10 } });
    await expect(c.writeMemory("a", 0x1000, Buffer.from([1]))).rejects.toBeInstanceOf(UnavailableError);
    expect(attempts).toBe(1);
  });
});

describe("retries", () => {
  test("CreateVm: every attempt carries the same request id, in the request and as x-request-id", async () => {
    const seen: { requestId: string; header: unknown }[] = [];
    const fake = await fakeAgent({
      createVm: (call: grpc.ServerUnaryCall<CreateVmRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        seen.push({ requestId: call.request.requestId, header: call.metadata.get("x-request-id")[0] });
        if (seen.length === 1) return cb(status(grpc.status.UNAVAILABLE, "connection reset"));
        if (seen.length === 2) return cb(status(grpc.status.DEADLINE_EXCEEDED, "helper slow"));
        cb(null, vmOf(call.request.vmId, call.request.requestId));
      },
    });
    fakes.push(fake);
    const c = open({ address: fake.address, retry: { retries: 3, backoffMs: 10 } });
    const vm = await c.createVm({ vmId: "web1", spec: { name: "web1", memoryBytes: 32 << 20, boot: { $case: "demo", value: {} } } });
    expect(seen).toHaveLength(3);
    const id = seen[0].requestId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.map((s) => s.requestId)).toEqual([id, id, id]);
    expect(seen.map((s) => s.header)).toEqual([id, id, id]);
    expect(vm.requestId).toBe(id);
    // A request id the caller gives is the one used.
    seen.length = 2;
    await c.createVm({ vmId: "web2", requestId: "mine-1", spec: { name: "web2" } });
    expect(seen[2].requestId).toBe("mine-1");
  });

  test("CreateVm: ALREADY_EXISTS is success when the VM carries our request id, an AlreadyExistsError otherwise", async () => {
    const fake = await fakeAgent({
      createVm: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(status(grpc.status.ALREADY_EXISTS, "VM 'web1' already exists")),
      getVm: (call: grpc.ServerUnaryCall<{ vmId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, vmOf(call.request.vmId, "ours")),
    });
    fakes.push(fake);
    const c = open({ address: fake.address });
    expect((await c.createVm({ vmId: "web1", requestId: "ours", spec: {} })).vmId).toBe("web1");
    await expect(c.createVm({ vmId: "web1", requestId: "theirs", spec: {} })).rejects.toBeInstanceOf(AlreadyExistsError);
  });

  test("DeleteVm: NOT_FOUND on a repeat means done; on the first attempt it is NotFoundError. StartVm: a repeat finding RUNNING is done", async () => {
    let deletes = 0;
    let starts = 0;
    const fake = await fakeAgent({
      deleteVm: (call: grpc.ServerUnaryCall<{ vmId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        deletes++;
        if (call.request.vmId === "gone") return cb(status(grpc.status.NOT_FOUND, "no VM 'gone'"));
        cb(status(deletes === 1 ? grpc.status.UNAVAILABLE : grpc.status.NOT_FOUND, "x"));
      },
      startVm: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        starts++;
        cb(status(starts === 1 ? grpc.status.DEADLINE_EXCEEDED : grpc.status.FAILED_PRECONDITION, "VM 'a' is RUNNING"));
      },
      getVm: (call: grpc.ServerUnaryCall<{ vmId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, vmOf(call.request.vmId, "r", call.request.vmId === "a" ? VmState.VM_STATE_RUNNING : VmState.VM_STATE_STOPPED)),
    });
    fakes.push(fake);
    const c = open({ address: fake.address, retry: { retries: 3, backoffMs: 10 } });
    await c.deleteVm("a");
    expect(deletes).toBe(2);
    await expect(c.deleteVm("gone")).rejects.toBeInstanceOf(NotFoundError);
    expect((await c.startVm("a")).state).toBe(VmState.VM_STATE_RUNNING);
    expect(starts).toBe(2);
    // A first attempt refused for the state is the caller's error, not retried.
    starts = 1;
    await expect(c.startVm("b", { retry: false })).rejects.toBeInstanceOf(FailedPreconditionError);
  });

  describe.skipIf(!hasKvm)("against a real agent restarted between attempts", () => {
    let agent: RunningAgent | undefined;
    afterAll(async () => {
      if (!agent) return;
      await discardAgent(agent, "SIGKILL");
    });

    test("a create sent while the agent is down is retried until it is back; a repeat after kill -9 returns the same VM, one helper", async () => {
      const port = await freePort();
      const args = ["--listen", `127.0.0.1:${port}`, "--unix", "none"];
      agent = await startAgent(args);
      const dirs = { stateDir: agent.stateDir, runtimeDir: agent.runtimeDir };
      await agent.stop("SIGKILL");
      const c = open({ address: `127.0.0.1:${port}`, retry: { retries: 60, backoffMs: 100, maxBackoffMs: 300 } });
      const pending = c.createVm({ vmId: "r1", requestId: "req-r1", spec: demoSpec("r1") });
      agent = await startAgent(args, dirs);
      const vm = await pending;
      expect(vm.requestId).toBe("req-r1");
      expect(vm.helperPid).toBeGreaterThan(0);
      // The reply could have been lost: kill -9 the agent, bring it back, repeat the same create.
      await agent.stop("SIGKILL");
      agent = await startAgent(args, dirs);
      const again = await c.createVm({ vmId: "r1", requestId: "req-r1", spec: demoSpec("r1") });
      expect(again.helperPid).toBe(vm.helperPid);
      expect((await c.listVms()).map((v) => v.vmId)).toEqual(["r1"]);
      await expect(c.createVm({ vmId: "r1", requestId: "another", spec: demoSpec("r1") })).rejects.toBeInstanceOf(AlreadyExistsError);
    });
  });
});

describe("watch", () => {
  test("a stream that ends is reopened after the last sequence with its instance; RESYNC is an item of its own", async () => {
    const requests: { fromSequence: bigint; instanceId: string }[] = [];
    const fake = await fakeAgent({
      watchVms: (call: grpc.ServerWritableStream<{ fromSequence: bigint; instanceId: string }, unknown>) => {
        requests.push({ fromSequence: call.request.fromSequence, instanceId: call.request.instanceId });
        if (requests.length === 1) {
          call.write(event(1, "i1"));
          call.write(event(2, "i1"));
          call.end();
        } else if (requests.length === 2) {
          call.emit("error", status(grpc.status.UNAVAILABLE, "agent going away"));
        } else {
          call.write(VmEvent.fromPartial({ sequence: 10n, instanceId: "i2", type: VmEventType.VM_EVENT_TYPE_RESYNC }));
          call.write(event(10, "i2", VmEventType.VM_EVENT_TYPE_SNAPSHOT));
          // then stays open
        }
      },
    });
    fakes.push(fake);
    const c = open({ address: fake.address });
    const watch = c.watchVms({ reconnect: { backoffMs: 10, maxBackoffMs: 20 } });
    const items = await collectWatch(watch, (all) => all.some((i) => i.kind === "event" && i.event.type === VmEventType.VM_EVENT_TYPE_SNAPSHOT));
    expect(items.map((i) => i.kind)).toEqual(["event", "event", "disconnected", "disconnected", "resync", "event"]);
    expect(requests).toEqual([
      { fromSequence: 0n, instanceId: "" },
      { fromSequence: 2n, instanceId: "i1" },
      { fromSequence: 2n, instanceId: "i1" },
    ]);
    const resync = items[4] as Extract<WatchItem, { kind: "resync" }>;
    expect(resync).toMatchObject({ previousInstanceId: "i1", instanceId: "i2", fromSequence: 2n, sequence: 10n });
    expect((items[3] as Extract<WatchItem, { kind: "disconnected" }>).error).toBeInstanceOf(UnavailableError);
    expect(watch.position).toEqual({ sequence: 10n, instanceId: "i2" });
  });

  test("resuming from 0 gets snapshots again: the watch says resync before them", async () => {
    let opens = 0;
    const fake = await fakeAgent({
      watchVms: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        opens++;
        call.write(event(0, `i${opens}`, VmEventType.VM_EVENT_TYPE_SNAPSHOT));
        if (opens === 1) call.end();
      },
    });
    fakes.push(fake);
    const c = open({ address: fake.address });
    const items = await collectWatch(c.watchVms({ reconnect: { backoffMs: 10 } }), (all) => all.length >= 4);
    expect(items.map((i) => i.kind)).toEqual(["event", "disconnected", "resync", "event"]);
  });

  test("a silent stream (no heartbeat for twice the period) is presumed dead and reopened", async () => {
    let opens = 0;
    const fake = await fakeAgent({
      watchVms: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        opens++;
        if (opens === 2) call.write(event(5, "i1"));
        // Otherwise says nothing, ever.
      },
    });
    fakes.push(fake);
    const c = open({ address: fake.address });
    const items = await collectWatch(c.watchVms({ heartbeatMs: 1000, reconnect: { backoffMs: 10 } }), (all) => all.some((i) => i.kind === "event"));
    expect(items[0].kind).toBe("disconnected");
    expect((items[0] as Extract<WatchItem, { kind: "disconnected" }>).error.details).toMatch(/no event or heartbeat/);
    expect(items[1]).toMatchObject({ kind: "event" });
    expect(opens).toBe(2);
  }, 20_000);

  describe.skipIf(!hasKvm)("on a real agent behind a proxy that cuts the connection", () => {
    let agent: RunningAgent;
    beforeAll(async () => {
      agent = await startAgent();
    });
    afterAll(async () => {
      await discardAgent(agent);
    });

    test("events made while the watcher was cut off arrive after it reconnects, numbered without a gap, without RESYNC", async () => {
      const proxy = await startTcpProxy(agent.address!);
      fakes.push(proxy);
      const direct = open({ address: agent.address });
      const watcher = open({ address: proxy.address });
      const watch = watcher.watchVms({ reconnect: { backoffMs: 50, maxBackoffMs: 200 } });
      const items: WatchItem[] = [];
      const done = (async () => {
        for await (const item of watch) {
          items.push(item);
          if (item.kind === "event" && item.event.vmId === "w2" && item.event.state === VmState.VM_STATE_RUNNING) break;
        }
      })();
      const waitFor = async (pred: () => boolean) => {
        while (!pred()) await new Promise((r) => setTimeout(r, 20));
      };
      await direct.createVm({ vmId: "w1", spec: demoSpec("w1") });
      await waitFor(() => items.some((i) => i.kind === "event" && i.event.vmId === "w1"));
      proxy.cut();
      await waitFor(() => items.some((i) => i.kind === "disconnected"));
      // While the watcher is cut off:
      await direct.startVm("w1");
      await direct.createVm({ vmId: "w2", spec: demoSpec("w2") });
      await direct.startVm("w2");
      proxy.restore();
      await done;
      expect(items.some((i) => i.kind === "resync")).toBe(false);
      const numbered = items.flatMap((i) => (i.kind === "event" && i.event.type !== VmEventType.VM_EVENT_TYPE_SNAPSHOT ? [i.event] : []));
      const seqs = numbered.map((e) => Number(e.sequence));
      expect(seqs).toEqual(seqs.map((_, k) => seqs[0] + k));
      expect(numbered.map((e) => [e.vmId, VmEventType[e.type], VmState[e.state]])).toEqual([
        ["w1", "VM_EVENT_TYPE_CREATED", "VM_STATE_CREATED"],
        ["w1", "VM_EVENT_TYPE_STATE_CHANGED", "VM_STATE_RUNNING"],
        ["w2", "VM_EVENT_TYPE_CREATED", "VM_STATE_CREATED"],
        ["w2", "VM_EVENT_TYPE_STATE_CHANGED", "VM_STATE_RUNNING"],
      ]);
      expect(proxy.connections()).toBeGreaterThanOrEqual(2);
    });
  });
});

describe.skipIf(!hasKvm)("console and display streams", () => {
  let agent: RunningAgent;
  beforeAll(async () => {
    agent = await startAgent();
  });
  afterAll(async () => {
    await discardAgent(agent);
  });

  test("attachConsole: output as an async iterable, write() reaches the guest, break detaches; an unknown VM throws NotFoundError", async () => {
    const c = open({ address: agent.address });
    await c.createVm({ vmId: "con1", spec: demoSpec("con1") });
    await c.startVm("con1");
    const session = c.attachConsole("con1");
    let text = "";
    let typed = false;
    for await (const chunk of session.output) {
      text += chunk.toString("latin1");
      if (!typed && text.includes("qumra demo guest\n")) {
        typed = true;
        text = "";
        session.write("?");
      }
      if (typed && text.includes("pong")) break;
    }
    await session.ended;
    expect(() => session.write("x")).toThrow(/attachment is over/);
    const none = c.attachConsole("no-such-vm");
    await expect((async () => {
      for await (const _ of none.output) void _;
    })()).rejects.toBeInstanceOf(NotFoundError);
  });

  test("streamDecodedDisplay: the first item is the keyframe decoded into a whole screen; break ends the stream", async () => {
    const c = open({ address: agent.address });
    await c.createVm({ vmId: "disp1", spec: demoSpec("disp1", { display: { width: 320, height: 200 } }) });
    await c.startVm("disp1");
    const frames = c.streamDecodedDisplay({ vmId: "disp1" });
    let seen = 0;
    for await (const f of frames) {
      expect(f.update.keyframe).toBe(true);
      expect([f.width, f.height, f.pixels.length]).toEqual([320, 200, 320 * 200 * 4]);
      seen++;
      break;
    }
    expect(seen).toBe(1);
    await frames.ended;
    // The undecoded stream too, and a bad request is the agent's typed refusal.
    const bad = c.streamDisplay({ vmId: "disp1", maxFps: 1000 });
    await expect(bad.next()).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe("bench sdk", () => {
  test("qumra bench sdk --json: one row per method with raw and SDK figures from the same run", async () => {
    const agent = await startAgent();
    try {
      const r = await runCli(["--host", agent.address!, "--json", "bench", "sdk", "--calls", "20", "--rounds", "2", "--concurrency", "4"]);
      expect(r.code, r.stderr).toBe(0);
      const rows = JSON.parse(r.stdout) as { method: string; calls: number; rawP50Ms: number; sdkP50Ms: number; p50Ratio: number; sdkCallsPerSecond: number; sdkCpuUsPerCall: number }[];
      expect(rows.map((x) => x.method)).toEqual(["HostService/GetHost", "VmService/ListVms", "VmService/GetVm (NOT_FOUND)"]);
      for (const row of rows) {
        expect(row.calls).toBe(40);
        expect(row.rawP50Ms).toBeGreaterThan(0);
        expect(row.sdkP50Ms).toBeGreaterThan(0);
        expect(row.p50Ratio).toBeCloseTo(row.sdkP50Ms / row.rawP50Ms, 1);
        expect(row.sdkCallsPerSecond).toBeGreaterThan(0);
        expect(row.sdkCpuUsPerCall).toBeGreaterThan(0);
      }
    } finally {
      await agent.stop();
      cleanup(agent.stateDir, agent.runtimeDir);
    }
  });
});

