// --metrics as configuration: off by default, HOST:PORT from the flag or QUMRA_METRICS, a non-loopback
// address refused without TLS (the agent exits 2 saying so), HTTPS with the agent's certificate, and a
// port already taken named in the error. Real agents, real sockets.
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import https from "node:https";
import net from "node:net";
import { readFileSync } from "node:fs";
import path from "node:path";
import { loadConfig } from "../agent/src/config.js";
import { agentBin, cleanup, startAgent, tempDir } from "./helpers/agent.js";
import { makePki } from "./helpers/pki.js";
import { parseExposition } from "./helpers/prometheus.js";

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const config = loadConfig(argv, env);
  if (config === "help") throw new Error("unexpected help");
  return config;
};

describe("--metrics configuration", () => {
  it("is off by default; takes HOST:PORT from the flag or QUMRA_METRICS, flag first; none turns it off", () => {
    expect(load([]).metrics).toBeUndefined();
    expect(load(["--metrics", "127.0.0.1:9477"]).metrics).toEqual({ host: "127.0.0.1", port: 9477 });
    expect(load([], { QUMRA_METRICS: "[::1]:0" }).metrics).toEqual({ host: "::1", port: 0 });
    expect(load(["--metrics", "none"], { QUMRA_METRICS: "127.0.0.1:1" }).metrics).toBeUndefined();
  });

  it.each([
    [["--metrics", "0.0.0.0:9477"], /refusing to serve metrics on 0\.0\.0\.0:9477 without TLS: they name every VM; a non-loopback --metrics address needs --tls-cert and --tls-key/],
    [["--metrics", "[::]:9477"], /refusing to serve metrics on \[::\]:9477 without TLS/],
    [["--metrics", "10.1.2.3:9477"], /without TLS/],
    [["--metrics", "9477"], /--metrics 9477: expected HOST:PORT/],
    [["--metrics", "127.0.0.1:70000"], /--metrics 127\.0\.0\.1:70000: expected HOST:PORT/],
    [["--metrics", "127.0.0.1:"], /expected HOST:PORT/],
  ])("refuses %j", (argv, message) => {
    expect(() => load(argv)).toThrow(message);
  });

  it("takes a non-loopback address with the agent's certificate", () => {
    const pki = makePki(tempDir("metrics-config-tls"));
    try {
      expect(load(["--metrics", "0.0.0.0:9477", "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey]).metrics).toEqual({ host: "0.0.0.0", port: 9477 });
    } finally {
      cleanup(pki.dir);
    }
  });

  it("the agent exits 2 on a non-loopback --metrics without TLS, before it touches anything, and documents the flag in --help", () => {
    const dir = tempDir("metrics-refuse");
    try {
      const r = spawnSync(process.execPath, [agentBin, "--state-dir", path.join(dir, "s"), "--runtime-dir", path.join(dir, "r"), "--cgroups", "off", "--metrics", "0.0.0.0:0"], { encoding: "utf8", timeout: 20_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/qumra-agent: refusing to serve metrics on 0\.0\.0\.0:0 without TLS/);
      const help = spawnSync(process.execPath, [agentBin, "--help"], { encoding: "utf8", timeout: 20_000 });
      expect(help.stdout).toMatch(/--metrics HOST:PORT\s+Prometheus metrics on GET \/metrics/);
    } finally {
      cleanup(dir);
    }
  });

  it("serves HTTPS with the agent's certificate when it has one (and no plaintext on that port)", async () => {
    const pki = makePki(tempDir("metrics-https"));
    const run = tempDir("metrics-https-run");
    // --unix: no TCP gRPC listener, which with a certificate would need --tls-ca.
    const agent = await startAgent(["--unix", path.join(run, "q.sock"), "--metrics", "127.0.0.1:0", "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey], { runtimeDir: run });
    try {
      const ca = readFileSync(pki.caCert);
      const body = await new Promise<string>((resolve, reject) =>
        https.get(`https://${agent.metrics}/metrics`, { ca, agent: false }, (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`status ${res.statusCode}`))));
        }).on("error", reject),
      );
      const m = parseExposition(body);
      expect(m.value("qumra_vms", { state: "RUNNING" })).toBe(0);
      expect(m.find("qumra_agent_info")).toHaveLength(1);
      // Plain HTTP on the TLS port gets no metrics.
      const [host, port] = [agent.metrics!.split(":")[0], Number(agent.metrics!.split(":")[1])];
      const plain = await new Promise<string>((resolve) => {
        const s = net.connect(port, host, () => s.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        let got = "";
        s.on("data", (d) => (got += d.toString("latin1")));
        s.on("close", () => resolve(got));
        s.on("error", () => resolve(got));
      });
      expect(plain).not.toMatch(/qumra_/);
    } finally {
      await agent.stop();
      cleanup(agent.stateDir, run, pki.dir);
    }
  });

  it("a --metrics port already in use stops the start with a message naming it", async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as net.AddressInfo).port;
    const dir = tempDir("metrics-taken");
    try {
      const r = spawnSync(process.execPath, [agentBin, "--state-dir", path.join(dir, "s"), "--runtime-dir", path.join(dir, "r"), "--cgroups", "off", "--metrics", `127.0.0.1:${port}`], { encoding: "utf8", timeout: 30_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`cannot listen on --metrics 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    } finally {
      taken.close();
      cleanup(dir);
    }
  });
});
