import * as grpc from "@grpc/grpc-js";
import { it } from "vitest";
import { readFileSync } from "node:fs";
import { CpuMode, VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { startAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { createVm } from "./helpers/vm.js";
import { floodGuest } from "./helpers/flood-guest.js";
const rss = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) >> 10;
it("rss", async () => {
  const n = Number(process.env.N ?? 20);
  const agent = await startAgent(["--max-consoles-per-vm", "64", "--console-backlog", "65536"]);
  const vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
  await createVm(vms, "f", { name: "f", vcpus: 1, memoryBytes: 4n << 20n, boot: { $case: "flatImage", value: { image: floodGuest(), loadAddress: 0x200000n, entryAddress: 0n, mode: CpuMode.CPU_MODE_LONG } }, labels: {}, imageCompression: 0 });
  for (let i = 0; i < n; i++) {
    const c = new VmServiceClient(agent.address!, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    const s = c.attachConsole(); s.on("error", () => undefined); s.write({ vmId: "f", data: Buffer.alloc(0) });
  }
  const out: string[] = [];
  for (let t = 0; t < Number(process.env.T ?? 100); t += 5) {
    await new Promise((r) => setTimeout(r, 5000));
    const st = await call(vms, vms.getVmStats, { vmId: "f" });
    out.push(`${t}s ${rss(agent.process.pid!)}MiB ${(Number(st.consoleBytes) / 1e6).toFixed(2)}MB`);
  }
  console.log(out.join(" | ")); console.log(agent.logs().split("\n").filter((l) => l.includes("bpdebug")).slice(-3).join("\n"));
  await call(vms, vms.deleteVm, { vmId: "f", force: true });
  await agent.stop();
}, 200000);
