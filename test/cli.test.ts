// The qumra CLI against real agents: JSON output, several hosts in parallel, per-host failures.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import os from "node:os";
import { startAgent, cleanup, runCli, tempDir, type RunningAgent } from "./helpers/agent.js";

describe("qumra CLI", () => {
  let a: RunningAgent;
  let b: RunningAgent;

  beforeAll(async () => {
    [a, b] = await Promise.all([startAgent(), startAgent()]);
  });
  afterAll(async () => {
    for (const agent of [a, b]) {
      await agent?.stop();
      cleanup(agent.stateDir, agent.runtimeDir);
    }
  });

  it("host info --json prints this host's facts", async () => {
    const r = await runCli(["--host", a.address!, "--json", "host", "info"]);
    expect(r.code, r.stderr).toBe(0);
    const facts = JSON.parse(r.stdout);
    expect(facts.hostname).toBe(os.hostname());
    expect(facts.memory.totalBytes).toBeGreaterThan(0);
    if (facts.kvm.available) {
      expect(facts.kvm.apiVersion).toBe(12);
      expect(facts.kvm.capabilities.length).toBeGreaterThan(0);
    }
  });

  it("host info prints readable text", async () => {
    const r = await runCli(["--host", a.address!, "host", "info"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^hostname: +\S+/m);
    expect(r.stdout).toMatch(/^kvm: +/m);
  });

  it("runs on several hosts and reports each", async () => {
    const r = await runCli(["--host", a.address!, "--host", b.address!, "--json", "host", "info"]);
    expect(r.code, r.stderr).toBe(0);
    const results = JSON.parse(r.stdout);
    expect(results.map((x: { host: string; ok: boolean }) => [x.host, x.ok])).toEqual([
      [a.address, true],
      [b.address, true],
    ]);
  });

  it("reports a failing host clearly and exits non-zero", async () => {
    const r = await runCli(["--host", a.address!, "--host", "127.0.0.1:1", "--timeout", "5", "host", "info"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`== ${a.address} ==\nhostname:`);
    expect(r.stdout).toMatch(/== 127\.0\.0\.1:1 ==\nerror: UNAVAILABLE: .*ECONNREFUSED 127\.0\.0\.1:1/);
    const json = await runCli(["--host", a.address!, "--host", "127.0.0.1:1", "--timeout", "5", "--json", "host", "info"]);
    expect(json.code).toBe(1);
    const [ok, failed] = JSON.parse(json.stdout);
    expect(ok.ok).toBe(true);
    expect(failed).toMatchObject({ host: "127.0.0.1:1", ok: false, error: { code: "UNAVAILABLE" } });
  });

  it("host stats streams samples from each host", async () => {
    const r = await runCli(["--host", a.address!, "--host", b.address!, "--json", "host", "stats", "--count", "2", "--interval", "100"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.host === a.address)).toHaveLength(2);
    expect(lines.filter((l) => l.host === b.address)).toHaveLength(2);
  });

  it("without --host, talks to the local agent's read-write socket in its runtime dir", async () => {
    const r = await runCli(["--json", "host", "info"], { QUMRA_HOST: "", QUMRA_RUNTIME_DIR: a.runtimeDir });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).agent.listen).toContain(`unix:${a.socket}`);
  });

  it("without --host and no agent socket, says where it looked and what to do", async () => {
    const empty = tempDir("no-agent");
    const r = await runCli(["host", "info"], { QUMRA_HOST: "", QUMRA_RUNTIME_DIR: empty });
    cleanup(empty);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`no agent socket at ${empty}/qumra.sock or ${empty}/qumra-ro.sock; start qumra-agent, or pass --host`);
  });

  it("rejects a malformed --host before calling anything", async () => {
    const r = await runCli(["--host", "nonsense", "host", "info"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--host nonsense: expected HOST:PORT/);
  });
});
