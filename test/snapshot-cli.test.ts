// qumra vm snapshot|restore|snapshots|snapshot-delete against a real agent on real KVM, text and --json.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { startAgent, cleanup, runCli, type RunningAgent } from "./helpers/agent.js";
import { hasKvm } from "./helpers/kvm.js";

describe.skipIf(!hasKvm)("qumra vm snapshot CLI", () => {
  let a: RunningAgent;
  const host = () => ["--host", a.address!];

  beforeAll(async () => {
    a = await startAgent();
  });
  afterAll(async () => {
    for (const id of ["demo", "copy"]) await runCli([...host(), "vm", "delete", id, "--force"]);
    await a.stop();
    cleanup(a.stateDir, a.runtimeDir);
  });

  it("snapshots a running VM, lists it, restores it paused under a new id, deletes it", async () => {
    expect((await runCli([...host(), "vm", "create", "--name", "demo", "--demo", "--memory", "32M", "--display", "640x480", "--start"])).code).toBe(0);
    const con = await runCli([...host(), "vm", "console", "demo", "--send", "?", "--follow-ms", "3000"]);
    expect(con.stdout).toContain("pong 0");

    const snap = await runCli([...host(), "--json", "vm", "snapshot", "demo", "first"]);
    expect(snap.code, snap.stderr).toBe(0);
    expect(JSON.parse(snap.stdout)).toMatchObject({ name: "first", sourceVmId: "demo", wasRunning: true, memoryBytes: 32 << 20, stateFormat: 1, display: "640x480" });
    const text = await runCli([...host(), "vm", "snapshot", "demo", "second"]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/snapshot:\s+second/);
    expect(text.stdout).toMatch(/of VM:\s+demo \(was running\)/);

    const list = await runCli([...host(), "--json", "vm", "snapshots"]);
    expect(JSON.parse(list.stdout).map((s: { name: string }) => s.name)).toEqual(["first", "second"]);
    const table = await runCli([...host(), "vm", "snapshots"]);
    expect(table.stdout).toMatch(/^NAME\s+OF VM/);

    const restored = await runCli([...host(), "--json", "vm", "restore", "first", "--from-vm", "demo", "--vm-id", "copy", "--paused"]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({ vmId: "copy", state: "PAUSED" });
    expect((await runCli([...host(), "vm", "resume", "copy"])).code).toBe(0);
    const after = await runCli([...host(), "vm", "console", "copy", "--send", "?", "--follow-ms", "3000"]);
    // The scrollback came along (the first pong), and the restored guest answers a new ping.
    expect(after.stdout.split("pong 0\n").length - 1).toBe(2);
    expect(after.stdout.split("qumra demo guest").length - 1).toBe(1);

    const del = await runCli([...host(), "vm", "snapshot-delete", "second"]);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toContain("deleted snapshot second");
  });

  it("says what is wrong: unknown snapshot, missing id, a name in use", async () => {
    const unknown = await runCli([...host(), "vm", "restore", "nope", "--vm-id", "x"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/NOT_FOUND.*no snapshot 'nope'/);
    const noId = await runCli([...host(), "vm", "restore", "first"]);
    expect(noId.code).not.toBe(0);
    expect(noId.stderr).toMatch(/--vm-id/);
    const dup = await runCli([...host(), "vm", "snapshot", "demo", "first"]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/ALREADY_EXISTS.*'first' already exists/);
  });
});
