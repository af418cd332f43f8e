// --health-listen: a real agent's plaintext health-only gRPC listener, as kubelet's gRPC probe uses it.
// Check and Watch mirror the API listeners' status map, every other service is UNIMPLEMENTED there, and
// SIGTERM turns it NOT_SERVING before it closes. Configuration parsed by the real loadConfig.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { loadConfig } from "../agent/src/config.js";
import { HostServiceClient } from "../agent/src/gen/qumra/v1/host.js";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { cleanup, startAgent, type RunningAgent } from "./helpers/agent.js";
import { call, callError } from "./helpers/grpc.js";
import { freePort } from "./helpers/ports.js";
import { checkHealth, healthClient, watchHealth, waitUntil, type HealthClientInstance } from "./helpers/health.js";

const SERVICES = ["", "qumra.v1.HostService", "qumra.v1.VmService", "qumra.v1.DisplayService", "qumra.v1.AuditService"];

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const config = loadConfig(argv, env);
  if (config === "help") throw new Error("unexpected help");
  return config;
};

describe("--health-listen configuration", () => {
  it("is off by default; HOST:PORT from the flag or QUMRA_HEALTH_LISTEN, flag first; none turns it off", () => {
    expect(load([]).healthListen).toBeUndefined();
    expect(load(["--health-listen", "127.0.0.1:9465"]).healthListen).toEqual({ host: "127.0.0.1", port: 9465 });
    expect(load([], { QUMRA_HEALTH_LISTEN: "[::1]:0" }).healthListen).toEqual({ host: "::1", port: 0 });
    expect(load(["--health-listen", "none"], { QUMRA_HEALTH_LISTEN: "127.0.0.1:1" }).healthListen).toBeUndefined();
  });

  it("takes any address without TLS (it serves no VM data)", () => {
    expect(load(["--health-listen", "0.0.0.0:9465"]).healthListen).toEqual({ host: "0.0.0.0", port: 9465 });
    expect(load(["--health-listen", "[::]:9465"]).healthListen).toEqual({ host: "::", port: 9465 });
  });

  it.each([["9465"], ["127.0.0.1:70000"], ["127.0.0.1:"], [":9465"]])("refuses %s naming the flag", (text) => {
    expect(() => load(["--health-listen", text])).toThrow(/--health-listen .*: expected HOST:PORT/);
  });
});

describe("an agent with --health-listen", () => {
  let agent: RunningAgent;
  let port: number;
  let health: HealthClientInstance;

  beforeAll(async () => {
    port = await freePort();
    agent = await startAgent(["--health-listen", `127.0.0.1:${port}`, "--display-workers", "0"]);
    health = healthClient(`127.0.0.1:${port}`);
  });
  afterAll(async () => {
    health?.close();
    await agent?.stop();
    if (agent) cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("reports where it listens and answers Check SERVING for the agent and each service", async () => {
    expect(agent.health).toBe(`127.0.0.1:${port}`);
    for (const name of SERVICES) expect(await checkHealth(health, name), `'${name}'`).toBe("SERVING");
    const unknown = await checkHealth(health, "no.such.Service").catch((err: grpc.ServiceError) => err);
    expect((unknown as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it("serves nothing else: VmService and HostService calls on its port are UNIMPLEMENTED", async () => {
    const vms = new VmServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const host = new HostServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    expect((await callError(vms, vms.listVms, { state: 0, labelSelector: {} })).code).toBe(grpc.status.UNIMPLEMENTED);
    expect((await callError(host, host.getHost, {})).code).toBe(grpc.status.UNIMPLEMENTED);
    // The same calls answer on the API listener.
    const api = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    expect((await call(api, api.listVms, { state: 0, labelSelector: {} })).vms).toEqual([]);
    for (const c of [vms, host, api]) c.close();
  });

  it("on SIGTERM tells watchers NOT_SERVING, then closes", async () => {
    const watch = watchHealth(health, "");
    await waitUntil(() => watch.statuses.includes("SERVING"), "Watch's first SERVING");
    const code = await agent.stop("SIGTERM");
    expect(code).toBe(0);
    expect(watch.statuses).toEqual(["SERVING", "NOT_SERVING"]);
    expect((await watch.ended)?.code).toBeDefined();
    const after = await checkHealth(health, "", 2000).catch((err: grpc.ServiceError) => err);
    expect((after as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
  });
});
