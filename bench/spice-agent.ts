// The qumra half of `qumra bench spice`: a qumra-agent of the benchmark's own, serving SPICE on an
// ephemeral loopback port with one image compression, and one demo-guest VM on it with a display ticket.
//
// What this assumes of the SPICE server (written before it was merged):
//   - qumra-agent takes `--spice 127.0.0.1:0` (port 0: the kernel picks) and `--spice-image-compression MODE`
//     (spice-server's names: off, auto_glz, auto_lz, quic, glz, lz);
//   - its "qumra-agent listening" log line carries a `spice` field with the bound address: "HOST:PORT",
//     { host, port }, or a list of those (the first is used); without it, GetDisplayConnection's port;
//   - DisplayService.SetDisplayTicket(vm_id, ticket, expires_in_s) admits a client presenting the ticket;
//   - VMs keep their spec's image_compression unspecified, so the agent's flag applies.
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { packageRoot } from "../agent/src/paths.js";
import { DisplayServiceClient, TicketExpiry, type DisplayConnection } from "../agent/src/gen/qumra/v1/display.js";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { openConsole, type ConsoleReader } from "./console-reader.js";
import type { Teardown } from "./teardown.js";

export interface SpiceAgentVm {
  target: string;
  spice: { host: string; port: number };
  vmId: string;
  ticket: string;
  vms: VmServiceClient;
  display: DisplayServiceClient;
  console: ConsoleReader;
}

function unary<Req, Res>(fn: (req: Req, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Reads the `spice` field of the listening line in any of the shapes listed above. */
export function spiceAddressOf(field: unknown): { host: string; port: number } | undefined {
  const one = Array.isArray(field) ? field[0] : field;
  if (typeof one === "string") {
    const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(one);
    return m ? { host: m[1], port: Number(m[2]) } : undefined;
  }
  if (one && typeof one === "object" && typeof (one as { port?: unknown }).port === "number") {
    const o = one as { host?: string; port: number };
    return { host: o.host ?? "127.0.0.1", port: o.port };
  }
  return undefined;
}

/** Starts the agent; resolves with its gRPC address and, when it logs one, its SPICE address. */
async function startAgent(compression: string, teardown: Teardown): Promise<{ target: string; spice?: { host: string; port: number } }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "qumra-bench-spice-"));
  teardown.add("agent state dir", () => rmSync(dir, { recursive: true, force: true }));
  const args = [path.join(packageRoot, "bin", "qumra-agent.js"), "--listen", "127.0.0.1:0", "--spice", "127.0.0.1:0", "--spice-image-compression", compression,
    "--state-dir", path.join(dir, "state"), "--runtime-dir", path.join(dir, "run"), "--log-level", "info"];
  // A process group of its own: a Ctrl-C at the terminal must not stop the agent before teardown has
  // deleted the VM through it (the VM's helper would outlive both).
  const child = teardown.child(`qumra-agent (${compression})`, spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], detached: true }));
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`qumra-agent did not start within 20 s:\n${output}`)), 20_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      for (const line of output.split("\n")) {
        if (!line.includes('"qumra-agent listening"')) continue;
        const logged = JSON.parse(line) as { listen: string[]; spice?: unknown };
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        resolve({ target: logged.listen.find((a) => !a.startsWith("unix:"))!, spice: spiceAddressOf(logged.spice) });
        return;
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      const lines = output.trim().split("\n");
      const reason = lines.find((l) => l.startsWith("qumra-agent:")) ?? lines.at(-1);
      reject(new Error(`qumra-agent --spice exited with ${code} before listening (is the SPICE server in this build?): ${reason}`));
    });
  });
}

/** An agent serving SPICE with `compression`, and a running demo VM of width x height with a ticket set. */
export async function startSpiceAgentVm(compression: string, width: number, height: number, teardown: Teardown): Promise<SpiceAgentVm> {
  const agent = await startAgent(compression, teardown);
  const vms = new VmServiceClient(agent.target, grpc.credentials.createInsecure());
  const display = new DisplayServiceClient(agent.target, grpc.credentials.createInsecure());
  teardown.add("gRPC clients", () => {
    vms.close();
    display.close();
  });
  const vmId = `bench-spice-${randomUUID().slice(0, 8)}`;
  await unary(vms.createVm.bind(vms), { vmId, requestId: randomUUID(), spec: { name: vmId, vcpus: 1, memoryBytes: 64n << 20n, boot: { $case: "demo", value: {} }, display: { width, height }, labels: {}, imageCompression: 0, cpuWeight: 0 } });
  // The helper outlives the agent by design: delete the VM before the agent stops (teardown runs in reverse).
  teardown.add(`VM ${vmId}`, () => unary(vms.deleteVm.bind(vms), { vmId, force: true }));
  const console = openConsole(vms, vmId);
  teardown.add("console", () => console.close());
  await unary(vms.startVm.bind(vms), { vmId });
  await console.waitFor("qumra demo guest");
  const ticket = randomBytes(18).toString("base64url");
  await unary(display.setDisplayTicket.bind(display), { vmId, ticket, expiresInS: 3600, onExpiry: TicketExpiry.TICKET_EXPIRY_KEEP });
  const spice: { host: string; port: number } = agent.spice ?? (await unary<{ vmId: string }, DisplayConnection>(display.getDisplayConnection.bind(display), { vmId }).then((c) => ({ host: c.host, port: c.port })));
  return { target: agent.target, spice, vmId, ticket, vms, display, console };
}

/** Types `text` through DisplayService.SendInput (the guest types it into its terminal window). */
export function typeText(vm: SpiceAgentVm, text: string): Promise<unknown> {
  return unary(vm.display.sendInput.bind(vm.display), { vmId: vm.vmId, events: [{ event: { $case: "text", value: text } }] });
}
