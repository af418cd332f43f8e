// TLS and mutual TLS on a real agent, with a CA generated at test time.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { HostServiceClient } from "../agent/src/gen/qumra/v1/host.js";
import { startAgent, cleanup, tempDir, runCli, type RunningAgent } from "./helpers/agent.js";
import { makePki, type TestPki } from "./helpers/pki.js";
import { call } from "./helpers/grpc.js";

describe("mutual TLS", () => {
  let pki: TestPki;
  let agent: RunningAgent;

  beforeAll(async () => {
    pki = makePki(tempDir("pki"));
    agent = await startAgent(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-ca", pki.caCert]);
  });
  afterAll(async () => {
    await agent?.stop();
    cleanup(pki.dir, agent.stateDir, agent.runtimeDir);
  });

  const client = (cert?: string, key?: string) =>
    new HostServiceClient(
      agent.address!,
      grpc.credentials.createSsl(readFileSync(pki.caCert), key ? readFileSync(key) : null, cert ? readFileSync(cert) : null),
    );

  it("accepts a client with a certificate from the CA", async () => {
    const host = client(pki.clientCert, pki.clientKey);
    const h = await call(host, host.getHost, {});
    expect(h.hostname).not.toBe("");
    host.close();
  });

  it("rejects a client without a certificate", async () => {
    const host = client();
    const err = await call(host, host.getHost, {}, 5000).then(() => undefined, (e: grpc.ServiceError) => e);
    host.close();
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
  });

  it("rejects a client whose certificate another CA signed", async () => {
    const host = client(pki.strangerCert, pki.strangerKey);
    const err = await call(host, host.getHost, {}, 5000).then(() => undefined, (e: grpc.ServiceError) => e);
    host.close();
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
  });

  it("rejects a plaintext client", async () => {
    const host = new HostServiceClient(agent.address!, grpc.credentials.createInsecure());
    const err = await call(host, host.getHost, {}, 5000).then(() => undefined, (e: grpc.ServiceError) => e);
    host.close();
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
  });

  it("serves the CLI with its TLS flags", async () => {
    const tls = ["--tls-ca", pki.caCert, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey];
    const ok = await runCli(["--host", agent.address!, ...tls, "--json", "host", "info"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).hostname).not.toBe("");
    const denied = await runCli(["--host", agent.address!, "--tls-ca", pki.caCert, "--timeout", "5", "host", "info"]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/UNAVAILABLE/);
  });

  it("listens on a non-loopback address only with TLS", async () => {
    const refused = await startAgent(["--listen", "0.0.0.0:0"]).then(() => undefined, (e: Error) => e);
    expect(refused?.message).toMatch(/refusing to listen on 0\.0\.0\.0:0 without TLS/);
    const open = await startAgent(["--listen", "0.0.0.0:0", "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-ca", pki.caCert]);
    expect(open.address).toMatch(/^0\.0\.0\.0:\d+$/);
    expect(await open.stop()).toBe(0);
    cleanup(open.stateDir, open.runtimeDir);
  });
});
