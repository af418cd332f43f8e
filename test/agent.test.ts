// The agent as a real process on a real socket: health, reflection, HostService, unix socket, shutdown.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import { existsSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { HostServiceClient } from "../agent/src/gen/qumra/v1/host.js";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, tempDir, repoRoot, waitForLog, type RunningAgent } from "./helpers/agent.js";
import { call, collect } from "./helpers/grpc.js";

const insecure = grpc.credentials.createInsecure();
const HealthClient = grpc.makeGenericClientConstructor(healthService, "Health");

describe("qumra-agent over TCP", () => {
  let agent: RunningAgent;
  let host: HostServiceClient;

  beforeAll(async () => {
    agent = await startAgent();
    host = new HostServiceClient(agent.address!, insecure);
  });
  afterAll(async () => {
    host?.close();
    await agent?.stop();
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("answers grpc.health.v1 for the server and each service", async () => {
    const health = new HealthClient(agent.address!, insecure);
    for (const name of ["", "qumra.v1.HostService", "qumra.v1.VmService", "qumra.v1.DisplayService"]) {
      const res = await new Promise<{ status: string }>((resolve, reject) =>
        health.check({ service: name }, (err: Error | null, r: { status: string }) => (err ? reject(err) : resolve(r))),
      );
      expect(res.status, `health of '${name}'`).toBe("SERVING");
    }
    const unknown = await new Promise<grpc.ServiceError>((resolve) => health.check({ service: "no.such.Service" }, (err: grpc.ServiceError) => resolve(err)));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    health.close();
  });

  it("lists its services through server reflection", async () => {
    const def = protoLoader.loadSync(path.join(repoRoot, "node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto"), { keepCase: true });
    const proto = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { serverReflectionInfo(): grpc.ClientDuplexStream<unknown, any> } } } };
    };
    const client = new proto.grpc.reflection.v1.ServerReflection(agent.address!, insecure);
    const stream = client.serverReflectionInfo();
    const reply = await new Promise<any>((resolve, reject) => {
      stream.on("data", resolve);
      stream.on("error", reject);
      stream.write({ list_services: "" });
    });
    stream.end();
    client.close();
    const names = reply.list_services_response.service.map((s: { name: string }) => s.name);
    expect(names).toEqual(expect.arrayContaining(["qumra.v1.HostService", "qumra.v1.VmService", "qumra.v1.DisplayService"]));
  });

  it("GetHost reports this machine's real facts", async () => {
    const h = await call(host, host.getHost, {});
    expect(h.hostname).toBe(os.hostname());
    expect(h.kernelRelease).toBe(readFileSync("/proc/sys/kernel/osrelease", "utf8").trim());
    const meminfo = readFileSync("/proc/meminfo", "utf8");
    expect(h.memory!.totalBytes).toBe(BigInt(/MemTotal:\s+(\d+)/.exec(meminfo)![1]) * 1024n);
    expect(h.memory!.availableBytes).toBeGreaterThan(0n);
    expect(h.cpu!.threads).toBe(os.cpus().length);
    const modelName = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim();
    if (modelName) expect(h.cpu!.model.replace(/\s+/g, " ")).toContain(modelName.split(" ")[0]);
    expect(h.numaNodes.flatMap((n) => n.cpus).length).toBe(os.cpus().length);
    expect(h.agent!.listen).toContain(agent.address);
    expect(h.agent!.stateDir).toBe(agent.stateDir);
  });

  it("GetHost reads KVM facts from /dev/kvm, or says why not", async () => {
    const h = await call(host, host.getHost, {});
    let usable = false;
    try {
      readFileSync("/dev/kvm", { flag: "r" });
    } catch (err) {
      usable = (err as NodeJS.ErrnoException).code === "EINVAL" || (err as NodeJS.ErrnoException).code === "EISDIR";
    }
    if (h.kvm!.available) {
      expect(h.kvm!.apiVersion).toBe(12);
      expect(h.kvm!.maxVcpus).toBeGreaterThan(0);
      expect(h.kvm!.capabilities.length).toBeGreaterThan(20);
      expect(h.kvm!.capabilities.find((c) => c.name === "IRQCHIP")?.value).toBe(1n);
    } else {
      expect(usable, `/dev/kvm is usable here but the agent says: ${h.kvm!.error}`).toBe(false);
      expect(h.kvm!.error).not.toBe("");
    }
  });

  it("WatchHostStats streams the requested number of samples and validates the interval", async () => {
    const samples = await collect(host.watchHostStats({ intervalMs: 100, count: 3 }));
    expect(samples).toHaveLength(3);
    for (const s of samples) {
      expect(s.memoryTotalBytes).toBeGreaterThan(0n);
      expect(s.perCpuPercent).toHaveLength(os.cpus().length);
      expect(s.cpuPercent).toBeGreaterThanOrEqual(0);
    }
    expect(samples[2].time!.getTime() - samples[0].time!.getTime()).toBeGreaterThanOrEqual(150);
    for (const intervalMs of [50, 3_600_001]) {
      const err = await collect(host.watchHostStats({ intervalMs, count: 1 })).then(() => undefined, (e: grpc.ServiceError) => e);
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details).toMatch(/interval_ms/);
    }
  });

  it("logs one line per RPC with method, peer, identity, role, status and duration", async () => {
    await call(host, host.getHost, {});
    await waitForLog(agent, /\/qumra\.v1\.HostService\/GetHost/);
    const line = agent.logs().split("\n").find((l) => l.includes("/qumra.v1.HostService/GetHost"));
    const entry = JSON.parse(line!);
    expect(entry).toMatchObject({ msg: "rpc", status: "OK" });
    expect(entry.peer).toMatch(/127\.0\.0\.1/);
    expect(typeof entry.duration_ms).toBe("number");
    // The development listener names its callers by address, and says at start what it gives away.
    expect(entry).toMatchObject({ identity: "tcp-plaintext:127.0.0.1", role: "admin" });
    expect(agent.logs()).toMatch(/plaintext gRPC on a loopback address: any local user controls this agent/);
  });
});

describe("qumra-agent lifecycle", () => {
  it("serves on a unix socket", async () => {
    const dir = tempDir("sock");
    const socket = path.join(dir, "agent.sock");
    const agent = await startAgent(["--unix", socket]);
    expect(agent.listen).toEqual([`unix:${socket}`, `unix:${path.join(dir, "agent-ro.sock")}`]);
    // Read-write for the owner and the socket group only; the read-only socket for every local user.
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    expect(statSync(path.join(dir, "agent-ro.sock")).mode & 0o777).toBe(0o666);
    const host = new HostServiceClient(`unix:${socket}`, insecure);
    const h = await call(host, host.getHost, {});
    expect(h.hostname).toBe(os.hostname());
    host.close();
    expect(await agent.stop()).toBe(0);
    expect(existsSync(socket)).toBe(false);
    cleanup(dir, agent.stateDir, agent.runtimeDir);
  });

  it("refuses to take over the socket of a live agent, naming the fix", async () => {
    const agent = await startAgent();
    const second = await startAgent([], { runtimeDir: agent.runtimeDir }).then(() => undefined, (e: Error) => e);
    expect(second?.message).toMatch(/another qumra-agent already answers on .*qumra\.sock; stop it first, or give this one another --runtime-dir or --unix/);
    // The first one still serves on it.
    const host = new HostServiceClient(`unix:${agent.socket}`, insecure);
    expect((await call(host, host.getHost, {})).hostname).toBe(os.hostname());
    host.close();
    expect(await agent.stop()).toBe(0);
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("stops cleanly on SIGTERM and on SIGINT", async () => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const agent = await startAgent();
      expect(await agent.stop(signal)).toBe(0);
      expect(agent.logs()).toContain('"msg":"stopped"');
      cleanup(agent.stateDir, agent.runtimeDir);
    }
  });

  it("lets a call in flight finish on SIGTERM", async () => {
    const agent = await startAgent();
    const host = new HostServiceClient(agent.address!, insecure);
    const stream = collect(host.watchHostStats({ intervalMs: 100, count: 2 }));
    await new Promise((r) => setTimeout(r, 50));
    const exit = agent.stop();
    expect(await stream).toHaveLength(2);
    expect(await exit).toBe(0);
    host.close();
    cleanup(agent.stateDir, agent.runtimeDir);
  });
});
