// The unix sockets, as another local user sees them: a second user (made here with useradd, removed
// after) may use the read-only socket to list VMs and take a screenshot, is refused everything else
// with PERMISSION_DENIED, and cannot connect to the read-write socket at all. Needs root and /dev/kvm.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { execFileSync, spawn } from "node:child_process";
import { chownSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, tempDir, cliBin, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { hasKvm } from "./helpers/kvm.js";
import { createVm } from "./helpers/vm.js";

interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

function addUser(): TestUser {
  if (process.getuid?.() !== 0) throw new Error("test/authz-unix.test.ts creates a local user: run it as root");
  const name = `qumra-test-${randomBytes(3).toString("hex")}`;
  execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name], { stdio: "pipe" });
  const id = (flag: string) => Number(execFileSync("id", [flag, name], { encoding: "utf8" }).trim());
  return { name, uid: id("-u"), gid: id("-g") };
}

/** The CLI run as `user`: its exit code and output. */
function cliAs(user: TestUser, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliBin, ...args], {
      uid: user.uid,
      gid: user.gid,
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH, HOME: "/nonexistent" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!hasKvm)("the API sockets and a second local user, on real KVM", () => {
  let user: TestUser;
  let agent: RunningAgent;
  let admin: VmServiceClient;
  const out = tempDir("authz-unix-out");

  beforeAll(async () => {
    user = addUser();
    chownSync(out, user.uid, user.gid);
    const runtimeDir = tempDir("authz-run");
    // No --listen: the default listeners only (startAgent adds a TCP port unless --unix is given).
    agent = await startAgent(["--unix", path.join(runtimeDir, "qumra.sock"), "--display-workers", "0"], { runtimeDir });
    admin = new VmServiceClient(`unix:${agent.socket}`, grpc.credentials.createInsecure());
    await createVm(admin, "d1");
  }, 120_000);

  afterAll(async () => {
    admin?.close();
    await agent?.stop();
    if (agent) killHelpersOf(agent.runtimeDir);
    if (user) execFileSync("userdel", [user.name], { stdio: "pipe" });
    cleanup(out, agent.stateDir, agent.runtimeDir);
  });

  it("serves the sockets with the modes that make this safe: rw 0660, ro 0666, runtime dir 0755, VM dirs 0700", () => {
    expect(agent.listen).toEqual([`unix:${agent.socket}`, `unix:${agent.readOnlySocket}`]);
    expect(statSync(agent.socket!).mode & 0o777).toBe(0o660);
    expect(statSync(agent.readOnlySocket!).mode & 0o777).toBe(0o666);
    expect(statSync(agent.runtimeDir).mode & 0o777).toBe(0o755);
    expect(statSync(path.join(agent.runtimeDir, "d1")).mode & 0o777).toBe(0o700);
  });

  it("the read-only socket lets the other user list VMs and take a screenshot", async () => {
    const ro = ["--host", `unix:${agent.readOnlySocket}`];
    const list = await cliAs(user, [...ro, "--json", "vm", "list"]);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(list.stdout))).toContain('"d1"');
    const shot = path.join(out, "d1.png");
    const taken = await cliAs(user, [...ro, "display", "screenshot", "d1", "-o", shot]);
    expect(taken.code, taken.stderr).toBe(0);
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe("PNG");
  });

  it.each([
    [["vm", "stop", "d1", "--force"], "StopVm", "operator"],
    [["vm", "delete", "d1", "--force"], "DeleteVm", "admin"],
    [["vm", "create", "--name", "evil", "--demo"], "CreateVm", "admin"],
    [["vm", "mem", "read", "d1", "0x100000", "32"], "ReadMemory", "admin"],
  ])("the read-only socket refuses %j with PERMISSION_DENIED", async (args, method, needs) => {
    const r = await cliAs(user, ["--host", `unix:${agent.readOnlySocket}`, ...args]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`PERMISSION_DENIED: identity unix:qumra-ro.sock has role viewer; /qumra.v1.VmService/${method} needs ${needs}`);
  });

  it("the read-write socket refuses the other user at connect", async () => {
    const rpcsOnRw = () => agent.logs().split("\n").filter((l) => l.includes('"identity":"unix:qumra.sock"')).length;
    const before = rpcsOnRw();
    const r = await cliAs(user, ["--host", `unix:${agent.socket}`, "--timeout", "5", "vm", "list"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/EACCES/);
    // Nothing reached the agent from that connection.
    expect(rpcsOnRw()).toBe(before);
  });

  it("the VM is untouched, and the refusals are in the audit trail", async () => {
    const lines = readFileSync(path.join(agent.stateDir, "audit.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { identity: string; method: string; code: string });
    const refused = lines.filter((l) => l.code === "PERMISSION_DENIED");
    expect(refused.map((l) => [l.identity, l.method.split("/").pop()])).toEqual([
      ["unix:qumra-ro.sock", "StopVm"],
      ["unix:qumra-ro.sock", "DeleteVm"],
      ["unix:qumra-ro.sock", "CreateVm"],
      ["unix:qumra-ro.sock", "ReadMemory"],
    ]);
  });
});
