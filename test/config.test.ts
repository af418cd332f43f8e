// Agent configuration: flags over environment over defaults, and clear errors.
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { loadConfig, ConfigError, isLoopback, parseHostPort } from "../agent/src/config.js";
import { agentBin, cleanup, tempDir } from "./helpers/agent.js";
import { makePki } from "./helpers/pki.js";

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const config = loadConfig(argv, env);
  if (config === "help") throw new Error("unexpected help");
  return config;
};

describe("agent configuration", () => {
  it("defaults to the unix sockets in the runtime dir and no TCP listener", () => {
    const c = load(["--runtime-dir", "/tmp/qr"]);
    expect(c.listen).toBeUndefined();
    expect(c.unix).toBe("/tmp/qr/qumra.sock");
    expect(c.unixReadOnly).toBe("/tmp/qr/qumra-ro.sock");
    expect(c.authz).toBeUndefined();
    expect(typeof c.socketGroup.gid).toBe("number");
    expect(c.logLevel).toBe("info");
    expect(c.shutdownTimeoutMs).toBe(5000);
  });

  it("takes QUMRA_* environment, and flags over it", () => {
    expect(load([], { QUMRA_LISTEN: "127.0.0.2:7000", QUMRA_STATE_DIR: "/tmp/s" })).toMatchObject({ listen: { host: "127.0.0.2", port: 7000 }, stateDir: "/tmp/s" });
    expect(load(["--listen", "[::1]:9"], { QUMRA_LISTEN: "127.0.0.2:7000" }).listen).toEqual({ host: "::1", port: 9 });
  });

  it("--unix PATH moves the sockets (the read-only one beside it); --unix none leaves TCP only", () => {
    const c = load(["--unix", "/tmp/q.sock"]);
    expect(c.listen).toBeUndefined();
    expect(c.unix).toBe("/tmp/q.sock");
    expect(c.unixReadOnly).toBe("/tmp/q-ro.sock");
    expect(load(["--unix", "/tmp/q.sock", "--listen", "127.0.0.1:1"]).listen).toEqual({ host: "127.0.0.1", port: 1 });
    const tcpOnly = load(["--unix", "none", "--listen", "127.0.0.1:1"]);
    expect([tcpOnly.unix, tcpOnly.unixReadOnly]).toEqual([undefined, undefined]);
  });

  it("TCP with --tls-cert needs --tls-ca (mutual TLS), naming the fix", () => {
    const pki = makePki(tempDir("config-mtls"));
    try {
      const tls = ["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey];
      expect(() => load(["--listen", "0.0.0.0:1", ...tls])).toThrow(/with --tls-cert but no --tls-ca: any client without a certificate could control this agent; give --tls-ca/);
      expect(load(["--listen", "0.0.0.0:1", ...tls, "--tls-ca", pki.caCert]).tls?.ca).toBeDefined();
      // Without a TCP listener the certificate serves SPICE/HTTPS only, where no CA is needed.
      expect(load(tls).tls?.ca).toBeUndefined();
    } finally {
      cleanup(pki.dir);
    }
  });

  it("--http is off by default; takes HOST:PORT (port 0: ephemeral) from the flag or QUMRA_HTTP", () => {
    expect(load([]).http).toBeUndefined();
    expect(load(["--http", "127.0.0.1:0"]).http).toEqual({ host: "127.0.0.1", port: 0 });
    expect(load([], { QUMRA_HTTP: "[::1]:8080" }).http).toEqual({ host: "::1", port: 8080 });
    expect(load(["--http", "none"], { QUMRA_HTTP: "127.0.0.1:8080" }).http).toBeUndefined();
  });

  it("--http on a non-loopback address needs TLS, as --listen does", () => {
    const tlsDir = tempDir("config-tls");
    try {
      const pki = makePki(tlsDir);
      const c = load(["--http", "0.0.0.0:8443", "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey]);
      expect(c.http).toEqual({ host: "0.0.0.0", port: 8443 });
      expect(c.tls?.cert.toString()).toMatch(/BEGIN CERTIFICATE/);
    } finally {
      cleanup(tlsDir);
    }
  });

  it.each([
    [["--http", "0.0.0.0:8080"], /refusing to serve HTTP on 0\.0\.0\.0:8080 without TLS: a non-loopback --http address needs --tls-cert and --tls-key/],
    [["--http", "8080"], /--http 8080: expected HOST:PORT/],
    [["--listen", "nonsense"], /--listen nonsense: expected HOST:PORT/],
    [["--listen", "1.2.3.4:99999"], /expected HOST:PORT/],
    [["--listen", "10.0.0.1:50051"], /refusing to listen on 10\.0\.0\.1:50051 without TLS/],
    [["--tls-cert", "/nonexistent.pem", "--tls-key", "/x"], /--tls-cert \/nonexistent.pem: no such file/],
    [["--tls-cert", "/etc/hostname"], /TLS needs both --tls-cert and --tls-key/],
    [["--log-level", "loud"], /--log-level loud: expected one of/],
    [["--shutdown-timeout=-1"], /--shutdown-timeout -1: expected milliseconds/],
    [["--shutdown-timeout", "soon"], /--shutdown-timeout soon: expected milliseconds/],
    [["--bogus"], /Unknown option '--bogus'/],
    [["--unix", "none"], /nothing to listen on: --unix none needs --listen/],
    [["--listen", "none", "--unix", "none"], /nothing to listen on/],
    [["--socket-group", "no-such-group-qumra"], /--socket-group no-such-group-qumra: no such group in \/etc\/group/],
    [["--authz", "/nonexistent/policy.yaml"], /--authz \/nonexistent\/policy.yaml: cannot read it \(ENOENT\)/],
    [["--runtime-dir", `/tmp/${"x".repeat(100)}`], /at most 107 bytes; choose a shorter --runtime-dir/],
    [["--unix", `/tmp/${"x".repeat(120)}`], /at most 107 bytes/],
  ])("rejects %j with a clear message", (argv, message) => {
    expect(() => load(argv)).toThrow(ConfigError);
    expect(() => load(argv)).toThrow(message);
  });

  it("SPICE: off by default; HOST:PORT on loopback is plaintext; HOST alone is TLS only with --spice-tls-port", () => {
    expect(load([]).spice).toBeUndefined();
    expect(load(["--spice", "127.0.0.1:5900"]).spice).toEqual({ host: "127.0.0.1", port: 5900, tlsPort: undefined, imageCompression: "auto_glz", multiClient: false });
    expect(load(["--spice", "[::1]:5900", "--spice-image-compression", "lz", "--spice-multi-client"]).spice).toMatchObject({ host: "::1", port: 5900, imageCompression: "lz", multiClient: true });
    const pki = makePki(tempDir("config-pki"));
    const tls = ["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey];
    expect(load(["--spice", "0.0.0.0", "--spice-tls-port", "5901", ...tls]).spice).toMatchObject({ host: "0.0.0.0", port: undefined, tlsPort: 5901 });
    expect(load(["--spice", "127.0.0.1:5900", "--spice-tls-port", "5901", ...tls]).spice).toMatchObject({ port: 5900, tlsPort: 5901 });
    cleanup(pki.dir);
    expect(load(["--spice", "127.0.0.1:0"], { QUMRA_SPICE_IMAGE_COMPRESSION: "off", QUMRA_SPICE_MULTI_CLIENT: "1" }).spice).toMatchObject({ port: 0, imageCompression: "off", multiClient: true });
    expect(load([], { QUMRA_SPICE: "localhost:5930" }).spice).toMatchObject({ host: "localhost", port: 5930 });
  });

  it.each([
    [["--spice", "10.0.0.5:5900"], /a non-loopback plaintext SPICE port .* use --spice 10\.0\.0\.5 --spice-tls-port PORT/],
    [["--spice", "0.0.0.0:5900"], /a non-loopback plaintext SPICE port/],
    [["--spice", "10.0.0.5"], /has no port, which means TLS only: give --spice-tls-port/],
    [["--spice", "127.0.0.1", "--spice-tls-port", "5901"], /--spice-tls-port needs --tls-cert and --tls-key/],
    [["--spice-tls-port", "5901"], /--spice-tls-port needs --spice HOST/],
    [["--spice", "127.0.0.1:5900", "--spice-tls-port", "x"], /--spice-tls-port x: expected a port number/],
    [["--spice", "127.0.0.1:5900", "--spice-image-compression", "lz4"], /--spice-image-compression lz4: expected one of auto_glz, auto_lz, quic, glz, lz, off/],
    [["--spice", "127.0.0.1:99999"], /--spice 127\.0\.0\.1:99999: expected HOST:PORT/],
  ])("SPICE: rejects %j", (argv, message) => {
    expect(() => load(argv)).toThrow(message);
  });

  it("knows loopback addresses", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) expect(isLoopback(h), h).toBe(true);
    for (const h of ["0.0.0.0", "10.1.1.1", "::", "example.org", "128.0.0.1"]) expect(isLoopback(h), h).toBe(false);
    expect(parseHostPort("[::1]:50051", "x")).toEqual({ host: "::1", port: 50051 });
  });

  it("the agent exits 2 with the message and usage on bad flags", () => {
    const r = spawnSync(process.execPath, [agentBin, "--listen", "bad"], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^qumra-agent: --listen bad: expected HOST:PORT/);
    const unknown = spawnSync(process.execPath, [agentBin, "--frobnicate"], { encoding: "utf8" });
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown option '--frobnicate'[\s\S]*Usage: qumra-agent/);
  });

  it("the agent prints its usage with --help", () => {
    const r = spawnSync(process.execPath, [agentBin, "--help"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Usage: qumra-agent/);
    expect(r.stdout).toMatch(/--spice HOST\[:PORT\][\s\S]*--spice-tls-port PORT[\s\S]*--spice-image-compression[\s\S]*--spice-multi-client/);
  });

  it("turns the helpers' sandbox on by default, for the qumra-vmm user, and checks --vmm-sandbox and --vmm-user", () => {
    expect(load([]).vmmSandbox).toEqual({ enabled: true, user: "qumra-vmm" });
    expect(load(["--vmm-sandbox", "off", "--vmm-user", "vmm_1"]).vmmSandbox).toEqual({ enabled: false, user: "vmm_1" });
    expect(load([], { QUMRA_VMM_SANDBOX: "off" }).vmmSandbox.enabled).toBe(false);
    expect(() => load(["--vmm-sandbox", "yes"])).toThrow(/--vmm-sandbox yes: expected on or off/);
    expect(() => load(["--vmm-user", "Bad User"])).toThrow(/--vmm-user Bad User: expected a user name/);
    expect(() => load(["--vmm-user", "root"])).toThrow(/unprivileged user/);
  });

  it("caps consoles and viewers per VM at 16 by default, with the console backlog at 1 MiB, and checks the flags", () => {
    expect(load([]).clientLimits).toEqual({ maxConsolesPerVm: 16, maxViewersPerVm: 16, consoleBacklogBytes: 1 << 20 });
    expect(load(["--max-consoles-per-vm", "3", "--max-viewers-per-vm", "5", "--console-backlog", "65536"]).clientLimits).toEqual({ maxConsolesPerVm: 3, maxViewersPerVm: 5, consoleBacklogBytes: 65536 });
    expect(load([], { QUMRA_MAX_VIEWERS_PER_VM: "7" }).clientLimits.maxViewersPerVm).toBe(7);
    expect(() => load(["--max-consoles-per-vm", "0"])).toThrow(/--max-consoles-per-vm 0: expected a whole number from 1 to 100000/);
    expect(() => load(["--max-viewers-per-vm", "many"])).toThrow(/--max-viewers-per-vm many: expected a whole number/);
    expect(() => load(["--console-backlog", "100"])).toThrow(/--console-backlog 100: expected a whole number from 4096/);
  });
});
