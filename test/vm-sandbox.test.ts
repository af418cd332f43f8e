// The helper sandbox end to end: real agents, real qumra-vmm helpers on real /dev/kvm, read back
// from /proc (what the kernel says is in force) and from GetVm (what the helper reports).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, VmState, type Vm } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, repoRoot, runCli, tempDir, type RunningAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { attachConsole, createVm, waitForState } from "./helpers/vm.js";
import { createSecret } from "../agent/src/vm/control-secret.js";

const isRoot = process.getuid?.() === 0;
const vmm = path.join(repoRoot, "native", "build", "qumra-vmm");
const seccompTestVmm = path.join(repoRoot, "native", "build", "qumra-vmm-seccomp-test");

/** The "Key: value" lines of /proc/PID/status. */
function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** The soft limit of one row of /proc/PID/limits ("Max open files" → "128"). */
function procLimit(pid: number, name: string): string {
  const row = readFileSync(`/proc/${pid}/limits`, "utf8").split("\n").find((l) => l.startsWith(name));
  if (!row) throw new Error(`no "${name}" in /proc/${pid}/limits`);
  return row.slice(name.length).trim().split(/\s+/)[0];
}

/** The uid the sandboxed helpers should run as: qumra-vmm as root, else our own. */
function expectedUid(): number {
  if (!isRoot) return process.getuid!();
  return Number(execFileSync("id", ["-u", "qumra-vmm"], { encoding: "utf8" }).trim());
}

async function connect(agent: RunningAgent): Promise<VmServiceClient> {
  return new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
}

async function deleteAll(vms: VmServiceClient): Promise<void> {
  const { vms: left } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
  await Promise.all(left.map((vm) => call(vms, vms.deleteVm, { vmId: vm.vmId, force: true })));
}

describe.skipIf(!hasKvm)("helper sandbox on real KVM", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let vm: Vm;

  beforeAll(async () => {
    agent = await startAgent();
    vms = await connect(agent);
    vm = await createVm(vms, "boxed");
    await attachConsole(vms, "boxed").waitFor("qumra demo guest\n");
  });
  afterAll(async () => {
    await deleteAll(vms);
    vms.close();
    await agent.stop();
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("runs the helper with seccomp filter mode, no_new_privs, no capabilities and the unprivileged uid", () => {
    const st = procStatus(vm.helperPid);
    expect(st.Seccomp).toBe("2");
    expect(st.NoNewPrivs).toBe("1");
    const uid = expectedUid();
    expect(st.Uid.split(/\s+/).map(Number)).toEqual([uid, uid, uid, uid]);
    if (isRoot) {
      expect(uid).not.toBe(0);
      expect(st.CapEff).toBe("0000000000000000");
      expect(st.Groups).toBe("");
    }
  });

  it("reports the sandbox in GetVm and in qumra vm get", async () => {
    const got = await call(vms, vms.getVm, { vmId: "boxed" });
    const st = procStatus(got.helperPid);
    expect(got.sandbox).toEqual({
      seccomp: "filter",
      uid: expectedUid(),
      gid: Number(st.Gid.split(/\s+/)[0]),
      noNewPrivs: true,
      mountNamespace: isRoot,
      note: isRoot ? "" : expect.stringContaining("no mount namespace"),
    });
    const text = await runCli(["--host", agent.address!, "vm", "get", "boxed"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`sandbox:\\s+seccomp filter, uid ${expectedUid()} gid \\d+, no_new_privs`));
    const json = await runCli(["--host", agent.address!, "--json", "vm", "get", "boxed"]);
    expect(json.code).toBe(0);
    expect(JSON.stringify(JSON.parse(json.stdout))).toContain('"seccomp":"filter"');
  });

  // helper.lock: the flock that makes it the only helper of its runtime dir, held by the open fd.
  it("keeps only the fds the VM needs and sets the rlimits", () => {
    const pid = vm.helperPid;
    const runDir = path.join(agent.runtimeDir, "boxed");
    const targets = readdirSync(`/proc/${pid}/fd`).map((fd) => ({ fd: Number(fd), target: readlinkSync(`/proc/${pid}/fd/${fd}`) }));
    const expected = [/^\/dev\/null$/, new RegExp(`^${runDir}/qumra-vmm\\.log$`), /^\/dev\/kvm$/, new RegExp(`^${runDir}/framebuffer$`), new RegExp(`^${runDir}/helper\\.lock$`), /^anon_inode:/, /^socket:\[\d+\]$/, /^\/memfd:qumra-guest-ram/];
    for (const { fd, target } of targets) {
      expect(expected.some((re) => re.test(target)), `fd ${fd} → ${target} is not one the helper needs`).toBe(true);
    }
    expect(targets.filter((t) => t.target.startsWith("socket:")).length).toBeLessThanOrEqual(2); // listener + the agent
    expect(procLimit(pid, "Max core file size")).toBe("0");
    expect(Number(procLimit(pid, "Max open files"))).toBeLessThanOrEqual(Math.max(...targets.map((t) => t.fd)) + 1 + 64);
    expect(Number(procLimit(pid, "Max file size"))).toBeGreaterThanOrEqual(64 << 20);
    if (isRoot) expect(procLimit(pid, "Max processes")).toBe("4096");
  });

  it.skipIf(!isRoot)("shows the helper only its runtime dir and /dev/kvm", () => {
    const root = `/proc/${vm.helperPid}/root`;
    const runDir = path.join(agent.runtimeDir, "boxed");
    expect(readdirSync(root).sort()).toEqual(["dev", runDir.split("/")[1]].sort());
    expect(readdirSync(path.join(root, "dev"))).toEqual(["kvm"]);
    expect(readdirSync(path.join(root, runDir)).sort()).toEqual(readdirSync(runDir).sort());
    expect(readdirSync(path.join(root, path.dirname(runDir)))).toEqual(["boxed"]);
  });

  it("asks a re-attached helper for its sandbox instead of trusting the record", async () => {
    const recordPath = path.join(agent.stateDir, "vms", "boxed", "vm.json");
    vms.close();
    await agent.stop();
    const record = JSON.parse(readFileSync(recordPath, "utf8")) as Record<string, unknown>;
    expect(record.sandbox).toBeDefined();
    delete record.sandbox;
    writeFileSync(recordPath, JSON.stringify(record));
    agent = await startAgent([], { stateDir: agent.stateDir, runtimeDir: agent.runtimeDir });
    vms = await connect(agent);
    const got = await call(vms, vms.getVm, { vmId: "boxed" });
    expect(got.state).toBe(VmState.VM_STATE_RUNNING);
    expect(got.helperPid).toBe(vm.helperPid);
    expect(got.sandbox?.seccomp).toBe("filter");
    expect(got.sandbox?.uid).toBe(expectedUid());
  });
});

describe.skipIf(!hasKvm)("a forbidden syscall (seccomp test build)", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;

  beforeAll(async () => {
    agent = await startAgent(["--vmm", seccompTestVmm]);
    vms = await connect(agent);
  });
  afterAll(async () => {
    await deleteAll(vms);
    vms.close();
    await agent.stop();
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("kills only that helper, which the agent reports CRASHED by seccomp, while another VM keeps running", async () => {
    const victim = await createVm(vms, "victim");
    const bystander = await createVm(vms, "bystander");
    const victimConsole = attachConsole(vms, "victim");
    const other = attachConsole(vms, "bystander");
    await Promise.all([victimConsole.waitFor("qumra demo guest\n"), other.waitFor("qumra demo guest\n")]);

    victimConsole.send("SECCOMP-TEST");
    const crashed = await waitForState(vms, "victim", VmState.VM_STATE_CRASHED);
    expect(crashed.stateReason).toMatch(new RegExp(`helper process ${victim.helperPid} was killed by seccomp \\(forbidden syscall, signal SIGSYS\\)`));
    expect(crashed.helperPid).toBe(0);

    const mark = other.text().length;
    other.send("?");
    await other.waitFor("pong", 30_000, mark);
    const still = await call(vms, vms.getVm, { vmId: "bystander" });
    expect(still.state).toBe(VmState.VM_STATE_RUNNING);
    expect(still.helperPid).toBe(bystander.helperPid);
    expect(procStatus(still.helperPid).Seccomp).toBe("2");
  });
});

describe.skipIf(!hasKvm)("--vmm-sandbox off", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;

  beforeAll(async () => {
    agent = await startAgent(["--vmm-sandbox", "off"]);
    vms = await connect(agent);
  });
  afterAll(async () => {
    await deleteAll(vms);
    vms.close();
    await agent.stop();
    cleanup(agent.stateDir, agent.runtimeDir);
  });

  it("reports seccomp disabled and leaves the helper as the agent's uid", async () => {
    const vm = await createVm(vms, "open");
    expect(vm.sandbox).toMatchObject({ seccomp: "disabled", uid: process.getuid!(), noNewPrivs: false, mountNamespace: false, note: "sandbox off (--no-sandbox)" });
    const st = procStatus(vm.helperPid);
    expect(st.Seccomp).toBe("0");
    expect(st.NoNewPrivs).toBe("0");
  });
});

describe.skipIf(!hasKvm)("the helper binary's sandbox flags", () => {
  /** Starts qumra-vmm by hand with an extra open file as fd 3; resolves with what its fds point to. */
  async function fdsWithInherited(extraArgs: string[]): Promise<{ targets: string[]; leaked: string }> {
    const dir = tempDir("sandbox-fds");
    const leaked = path.join(dir, "leaked.txt");
    writeFileSync(leaked, "an fd the helper must not keep\n");
    const fd = openSync(leaked, "r");
    const secretFile = path.join(dir, "control.secret");
    createSecret(secretFile);
    const child = spawn(vmm, ["--control", path.join(dir, "control.sock"), "--secret-file", secretFile, "--runtime-dir", dir, "--memory", "16M", "--demo", ...extraArgs], { stdio: ["ignore", "ignore", "inherit", fd] });
    closeSync(fd);
    try {
      for (let i = 0; i < 500 && !existsSync(path.join(dir, "control.sock")); i++) await new Promise((r) => setTimeout(r, 20));
      expect(existsSync(path.join(dir, "control.sock"))).toBe(true);
      return { targets: readdirSync(`/proc/${child.pid}/fd`).map((n) => readlinkSync(`/proc/${child.pid}/fd/${n}`)), leaked };
    } finally {
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      cleanup(dir);
    }
  }

  it("closes an inherited fd, which --no-sandbox keeps", async () => {
    const boxed = await fdsWithInherited([]);
    expect(boxed.targets).not.toContain(boxed.leaked);
    const open = await fdsWithInherited(["--no-sandbox"]);
    expect(open.targets).toContain(open.leaked);
  });

  it("refuses --uid without --gid as a usage error naming both", () => {
    const r = spawnSync(vmm, ["--control", "/nonexistent/c.sock", "--demo", "--uid", "1"], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--uid and --gid go together");
  });
});
