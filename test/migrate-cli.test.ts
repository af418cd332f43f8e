// qumra vm migrate|migrate-cancel against two real agents on real KVM, text and --json.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { startAgent, cleanup, killHelpersOf, runCli, type RunningAgent } from "./helpers/agent.js";
import { hasKvm } from "./helpers/kvm.js";

describe.skipIf(!hasKvm)("qumra vm migrate CLI", () => {
  let a: RunningAgent;
  let b: RunningAgent;
  const on = (agent: RunningAgent) => ["--host", `unix:${agent.socket}`];

  beforeAll(async () => {
    [a, b] = await Promise.all([startAgent(), startAgent()]);
  });
  afterAll(async () => {
    for (const agent of [a, b]) {
      await agent.stop();
      killHelpersOf(agent.runtimeDir);
      cleanup(agent.stateDir, agent.runtimeDir);
    }
  });

  it("migrates a running VM there and back, says what it measured, and refuses what it cannot do", async () => {
    expect((await runCli([...on(a), "vm", "create", "--name", "cli-mig", "--demo", "--memory", "32M", "--display", "640x480", "--start"])).code).toBe(0);
    const out = await runCli([...on(a), "vm", "list", "--json"]);
    const vmId = JSON.parse(out.stdout)[0].vmId as string;

    const there = await runCli([...on(a), "--json", "vm", "migrate", vmId, "--to", `unix:${b.socket}`]);
    expect(there.code, there.stderr).toBe(0);
    const r = JSON.parse(there.stdout);
    expect(r).toMatchObject({ destination: `unix:${b.socket}`, phase: "COMPLETED", memoryBytes: 32 << 20 });
    expect(r.downtimeMs).toBeGreaterThan(0);
    expect(r.ramCrc32).toMatch(/^0x[0-9a-f]{8}$/);
    expect(JSON.parse((await runCli([...on(b), "--json", "vm", "get", vmId])).stdout).state).toBe("RUNNING");

    const back = await runCli([...on(b), "vm", "migrate", vmId, "--to", `unix:${a.socket}`, "--max-downtime", "100"]);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toMatch(/migrated:\s+\S+ to unix:/);
    expect(back.stdout).toMatch(/downtime:\s+\d+ ms/);

    const notMigrating = await runCli([...on(a), "vm", "migrate-cancel", vmId]);
    expect(notMigrating.code).toBe(1);
    expect(notMigrating.stderr).toMatch(/NOT_FOUND.*not migrating/);
    const badRate = await runCli([...on(a), "vm", "migrate", vmId, "--to", `unix:${b.socket}`, "--bandwidth", "fast"]);
    expect(badRate.code).not.toBe(0);
    expect(badRate.stderr).toMatch(/--bandwidth fast/);
    const plain = await runCli([...on(a), "vm", "migrate", vmId, "--to", "192.0.2.1:50051"]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/INVALID_ARGUMENT.*needs TLS/);
  });
});
