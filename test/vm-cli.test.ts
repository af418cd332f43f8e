// qumra vm … against real agents on real KVM: JSON output, several hosts, console, registers, memory.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { startAgent, cleanup, runCli, tempDir, type RunningAgent } from "./helpers/agent.js";
import { hasKvm } from "./helpers/kvm.js";
import { TINY_GUEST } from "./helpers/vm.js";

describe.skipIf(!hasKvm)("qumra vm CLI", () => {
  let a: RunningAgent;
  let b: RunningAgent;
  let dir: string;
  const both = () => ["--host", a.address!, "--host", b.address!];

  beforeAll(async () => {
    [a, b] = await Promise.all([startAgent(), startAgent()]);
    dir = tempDir("cli");
  });
  afterAll(async () => {
    await runCli([...both(), "vm", "delete", "demo", "--force"]);
    await runCli(["--host", a.address!, "vm", "delete", "tiny", "--force"]);
    for (const agent of [a, b]) {
      await agent.stop();
      cleanup(agent.stateDir, agent.runtimeDir);
    }
    cleanup(dir);
  });

  it("creates and starts the demo guest on two hosts at once", async () => {
    const r = await runCli([...both(), "--json", "vm", "create", "--name", "demo", "--demo", "--memory", "32M", "--label", "team=qa", "--start"]);
    expect(r.code, r.stderr).toBe(0);
    const results = JSON.parse(r.stdout);
    expect(results).toHaveLength(2);
    for (const res of results) expect(res.result).toMatchObject({ vmId: "demo", state: "RUNNING", memoryBytes: 32 << 20, labels: { team: "qa" } });

    const list = await runCli([...both(), "--json", "vm", "list", "--label", "team=qa"]);
    expect(JSON.parse(list.stdout).map((x: { result: { vmId: string }[] }) => x.result.map((v) => v.vmId))).toEqual([["demo"], ["demo"]]);
  });

  it("shows the console, sends keys, and reads registers and memory of a paused VM", async () => {
    const host = ["--host", a.address!];
    const con = await runCli([...host, "vm", "console", "demo", "--send", "?", "--follow-ms", "3000"]);
    expect(con.code, con.stderr).toBe(0);
    expect(con.stdout).toContain("qumra demo guest");
    expect(con.stdout).toContain("pong 0");

    expect((await runCli([...host, "vm", "pause", "demo"])).code).toBe(0);
    const regs = await runCli([...host, "vm", "regs", "demo", "--set", "r15=0x77"]);
    expect(regs.code, regs.stderr).toBe(0);
    expect(regs.stdout).toMatch(/r15=0x0000000000000077/);
    expect((await runCli([...host, "vm", "mem", "write", "demo", "0x8000", "--hex", "efbeadde"])).code).toBe(0);
    const mem = await runCli([...host, "--json", "vm", "mem", "read", "demo", "0x8000", "4"]);
    expect(JSON.parse(mem.stdout)).toMatchObject({ address: "0x8000", length: 4, hex: "efbeadde" });
    const dump = await runCli([...host, "vm", "mem", "read", "demo", "0x8000", "4"]);
    expect(dump.stdout).toMatch(/^000000008000  ef be ad de/);

    const running = await runCli([...host, "vm", "regs", "demo"]);
    expect(running.code).toBe(0); // still paused
    expect((await runCli([...host, "vm", "resume", "demo"])).code).toBe(0);
    const notPaused = await runCli([...host, "vm", "regs", "demo"]);
    expect(notPaused.code).toBe(1);
    expect(notPaused.stderr).toMatch(/FAILED_PRECONDITION: cannot read registers of VM 'demo': it is RUNNING/);

    const stats = await runCli([...host, "--json", "vm", "stats", "demo"]);
    expect(JSON.parse(stats.stdout).helperRssBytes).toBeGreaterThan(0);
  });

  it("boots a flat image given as a file", async () => {
    const image = path.join(dir, "tiny.bin");
    writeFileSync(image, TINY_GUEST);
    const r = await runCli(["--host", a.address!, "--json", "vm", "create", "--name", "tiny", "--image", image, "--memory", "2M", "--mode", "protected", "--start"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).boot).toMatchObject({ kind: "flat", mode: "protected", loadAddress: "0x100000" });
    const con = await runCli(["--host", a.address!, "vm", "console", "tiny", "--follow-ms", "2000"]);
    expect(con.stdout).toContain("Q\n");
  });

  it("stops on every host and reports per-host failures", async () => {
    const stop = await runCli([...both(), "--json", "vm", "stop", "demo", "--force"]);
    expect(JSON.parse(stop.stdout).map((x: { result: { state: string } }) => x.result.state)).toEqual(["STOPPED", "STOPPED"]);
    const events = await runCli(["--host", a.address!, "--json", "vm", "events", "demo", "--count", "1"]);
    expect(JSON.parse(events.stdout.trim().split("\n")[0])).toMatchObject({ type: "SNAPSHOT", vmId: "demo", state: "STOPPED" });
    const missing = await runCli([...both(), "vm", "get", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/error: NOT_FOUND: no VM 'nope' on this host/);
    const bad = await runCli(["--host", a.address!, "vm", "create", "--name", "x"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/give exactly one of --image FILE, --kernel FILE and --demo/);
  });
});
