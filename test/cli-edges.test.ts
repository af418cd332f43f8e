// The CLI's edges, against a real agent on real KVM: an --image that is not a regular file or is too
// large, a demo VM too small for its image, a console whose stdout closes (`| head`) and one whose
// stdin is at EOF (`< /dev/null`).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { spawn } from "node:child_process";
import { closeSync, openSync, ftruncateSync } from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent, cleanup, cliBin, killHelpersOf, runCli, tempDir, type RunningAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { createVm } from "./helpers/vm.js";

describe.skipIf(!hasKvm)("qumra CLI edges", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let dir: string;
  const host = () => ["--host", agent.address!];

  beforeAll(async () => {
    agent = await startAgent();
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    dir = tempDir("cli-edges");
  });
  afterAll(async () => {
    const { vms: left } = await call(vms, vms.listVms, { state: 0, labelSelector: {} });
    await Promise.all(left.map((vm) => call(vms, vms.deleteVm, { vmId: vm.vmId, force: true })));
    vms.close();
    await agent.stop();
    killHelpersOf(agent.runtimeDir);
    cleanup(agent.stateDir, agent.runtimeDir, dir);
  });

  it("refuses --image /dev/zero at once: not a regular file", async () => {
    const r = await runCli([...host(), "vm", "create", "--name", "zero", "--image", "/dev/zero"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--image \/dev\/zero is not a regular file \(it is a character device\)/);
  });

  it("refuses an --image above the limit before reading it", async () => {
    const big = path.join(dir, "big.bin");
    const fd = openSync(big, "w");
    ftruncateSync(fd, 17 << 20); // sparse: nothing is written
    closeSync(fd);
    const r = await runCli([...host(), "vm", "create", "--name", "big", "--image", big]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/is 17825792 bytes: images are at most 16777216 bytes \(16 MiB\)/);
  });

  it("answers a demo VM too small for its image with INVALID_ARGUMENT, not INTERNAL with a path", async () => {
    const r = await runCli([...host(), "vm", "create", "--name", "small", "--demo", "--memory", "1M"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/INVALID_ARGUMENT: spec.memory_bytes 1048576 is too small for the demo guest: .*give at least \d+ \(2 MiB\)/);
    expect(r.stderr).not.toMatch(/INTERNAL|demo-guest\.bin/);
    // The least it names is enough to boot.
    const ok = await runCli([...host(), "vm", "create", "--name", "small", "--demo", "--memory", "2M", "--start"]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("`vm console X | head`: a closed stdout ends the command quietly, status 0", async () => {
    await createVm(vms, "chatty");
    const child = spawn(process.execPath, [cliBin, ...host(), "vm", "console", "chatty", "--follow-ms", "20000"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.destroy(); // the reader is gone before the first byte (the scrollback) is written
    const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });

  it("`vm console X < /dev/null`: prints the scrollback and live output until the VM stops", async () => {
    await createVm(vms, "quiet");
    const child = spawn(process.execPath, [cliBin, ...host(), "vm", "console", "quiet"], { stdio: ["ignore", "pipe", "pipe"] }); // stdin: /dev/null
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no scrollback: ${stdout}`)), 20_000);
      child.stdout.on("data", () => stdout.includes("qumra demo guest") && (clearTimeout(timer), resolve()));
    });
    // Still attached (stdin's EOF did not end it) until the VM stops.
    expect(child.exitCode).toBeNull();
    await call(vms, vms.stopVm, { vmId: "quiet", force: true, timeoutMs: 0 });
    expect(await exited).toBe(0);
  });
});
