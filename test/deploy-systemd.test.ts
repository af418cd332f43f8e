// deploy/systemd: the unit passes `systemd-analyze verify` (with its ExecStart pointed at this
// checkout), has what the agent relies on (Type=notify, KillMode=process so helpers outlive a
// restart, the state and runtime dirs, /dev/kvm allowed, delegation), and every flag on its ExecStart
// line is accepted by the agent's real loadConfig. The sysusers file makes the users the unit expects.
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadConfig } from "../agent/src/config.js";
import { cleanup, repoRoot, tempDir } from "./helpers/agent.js";
import { readUnitFile, single } from "./helpers/unit-file.js";

const UNIT = path.join(repoRoot, "deploy/systemd/qumra-agent.service");
const SYSUSERS = path.join(repoRoot, "deploy/systemd/qumra.sysusers.conf");
/** Where the README installs the checkout. */
const INSTALLED = "/opt/qumra";

const unit = readUnitFile(UNIT);
const execStart = single(unit, "Service", "ExecStart").split(/\s+/);

describe("deploy/systemd/qumra-agent.service", () => {
  it("passes systemd-analyze verify with no warning, ExecStart pointed at this checkout", () => {
    const dir = tempDir("unit");
    try {
      const text = readFileSync(UNIT, "utf8").replaceAll(`${INSTALLED}/`, `${repoRoot}/`).replace("/usr/bin/node", process.execPath);
      writeFileSync(path.join(dir, "qumra-agent.service"), text);
      const run = spawnSync("systemd-analyze", ["verify", path.join(dir, "qumra-agent.service")], { encoding: "utf8" });
      expect(run.error, "systemd-analyze (Debian package systemd; .ci/run installs it)").toBeUndefined();
      expect(run.stderr.trim()).toBe("");
      expect(run.status).toBe(0);
    } finally {
      cleanup(dir);
    }
  });

  it("is Type=notify with NotifyAccess=all (systemd-notify, the agent's child, sends READY=1)", () => {
    expect(single(unit, "Service", "Type")).toBe("notify");
    expect(single(unit, "Service", "NotifyAccess")).toBe("all");
    expect(single(unit, "Service", "Restart")).toBe("on-failure");
  });

  it("kills only the agent on stop or restart (KillMode=process): VM helpers keep running", () => {
    expect(single(unit, "Service", "KillMode")).toBe("process");
    expect(single(unit, "Service", "Delegate")).toBe("yes");
  });

  it("has its state and runtime dirs (the runtime dir kept across restarts) and /dev/kvm allowed", () => {
    expect(single(unit, "Service", "StateDirectory")).toBe("qumra");
    expect(single(unit, "Service", "RuntimeDirectory")).toBe("qumra");
    expect(single(unit, "Service", "RuntimeDirectoryPreserve")).toBe("yes");
    expect(unit.Service.DeviceAllow).toContain("/dev/kvm rw");
    expect(single(unit, "Service", "ProtectSystem")).toBe("strict");
    expect(unit.Service.ProtectControlGroups, "per-VM cgroups need a writable /sys/fs/cgroup").toBeUndefined();
    expect(unit.Service.PrivateDevices, "would hide /dev/kvm").toBeUndefined();
    const caps = single(unit, "Service", "CapabilityBoundingSet").split(/\s+/);
    expect(caps).toEqual(expect.arrayContaining(["CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"]));
  });

  it("runs this checkout's agent and helper as laid out under /opt/qumra", () => {
    expect(execStart[0]).toBe("/usr/bin/node");
    for (const file of [execStart[1], execStart[execStart.indexOf("--vmm") + 1]]) {
      expect(file.startsWith(`${INSTALLED}/`), file).toBe(true);
      expect(existsSync(path.join(repoRoot, path.relative(INSTALLED, file))), `${file} in the build`).toBe(true);
    }
  });

  it("has only flags the agent's loadConfig accepts, with the dirs systemd makes", () => {
    const config = loadConfig(execStart.slice(2), {});
    if (config === "help") throw new Error("unexpected help");
    expect(config.stateDir).toBe(`/var/lib/${single(unit, "Service", "StateDirectory")}`);
    expect(config.runtimeDir).toBe(`/run/${single(unit, "Service", "RuntimeDirectory")}`);
    expect(config.unix).toBe("/run/qumra/qumra.sock");
    expect(config.metrics).toEqual({ host: "127.0.0.1", port: 9464 });
    expect(config.vmmSandbox.enabled).toBe(true);
  });
});

describe("deploy/systemd/qumra.sysusers.conf", () => {
  it("makes the qumra-vmm user and the qumra socket group (systemd-sysusers into a temp root)", () => {
    const root = tempDir("sysusers");
    try {
      mkdirSync(path.join(root, "etc"));
      const run = spawnSync("systemd-sysusers", [`--root=${root}`, SYSUSERS], { encoding: "utf8" });
      expect(run.status, run.stderr).toBe(0);
      const passwd = readFileSync(path.join(root, "etc/passwd"), "utf8");
      expect(passwd).toMatch(/^qumra-vmm:x:\d+:\d+:[^:]*:[^:]*:\/usr\/sbin\/nologin$/m);
      expect(readFileSync(path.join(root, "etc/group"), "utf8")).toMatch(/^qumra:x:\d+:/m);
    } finally {
      cleanup(root);
    }
  });
});
