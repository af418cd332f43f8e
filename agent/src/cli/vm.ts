// qumra vm create|start|pause|resume|stop|delete|get|list|console|regs|mem|events|stats (and snapshot.ts's snapshot|restore|snapshots|snapshot-delete, migrate.ts's migrate|migrate-cancel)
import type { Command } from "commander";
import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import {
  VmServiceClient,
  CpuMode,
  VmState,
  vmStateToJSON,
  vmStateFromJSON,
  vmEventTypeToJSON,
  type Vm,
  type VmEvent,
  type VmStats,
  type VcpuState,
  type Regs,
  type CreateVmRequest,
} from "../gen/qumra/v1/vm.js";
import { callUnary, type GlobalOptions } from "./connection.js";
import { readImageFile } from "./image-file.js";
import { compressionNamed } from "./display.js";
import { ImageCompression } from "../gen/qumra/v1/display.js";
import { withClients, toJson } from "./fan-out.js";
import { bytes, fields, table } from "./format.js";
import { collect, hex, parseAddress, parseIntIn, parseLabels, parseSize } from "./parse.js";
import { registerSnapshot } from "./snapshot.js";
import { registerMigrate } from "./migrate.js";

type Globals = () => GlobalOptions;

const stateName = (s: VmState) => vmStateToJSON(s).replace("VM_STATE_", "");

/** A VM as the CLI shows it (JSON and text): enums as names, sizes as numbers. */
export function vmView(vm: Vm) {
  const boot = vm.spec?.boot;
  return {
    vmId: vm.vmId,
    name: vm.spec?.name ?? "",
    state: stateName(vm.state),
    stateReason: vm.stateReason,
    vcpus: vm.spec?.vcpus ?? 0,
    memoryBytes: Number(vm.spec?.memoryBytes ?? 0n),
    boot: boot?.$case === "flatImage"
      ? { kind: "flat", loadAddress: hex(boot.value.loadAddress), entryAddress: hex(boot.value.entryAddress), mode: boot.value.mode === CpuMode.CPU_MODE_PROTECTED ? "protected" : "long", imageSha256: vm.imageSha256 }
      : boot?.$case === "linux"
      ? { kind: "linux", kernel: boot.value.kernel, initrd: boot.value.initrd, cmdline: boot.value.cmdline }
      : { kind: "demo" },
    display: vm.spec?.display ? `${vm.spec.display.width}x${vm.spec.display.height}` : "",
    labels: vm.spec?.labels ?? {},
    helperPid: vm.helperPid,
    createdAt: vm.createdAt?.toISOString(),
    stateChangedAt: vm.stateChangedAt?.toISOString(),
    requestId: vm.requestId,
    lastEventSequence: Number(vm.lastEventSequence),
    spiceClients: vm.spiceClients.map((c) => ({
      peer: c.peer,
      sessionId: c.sessionId,
      transport: c.transport,
      connectedAt: c.connectedAt?.toISOString(),
      channels: c.channels,
      latencyMs: Math.round(c.latencyMs * 10) / 10,
    })),
    sandbox: vm.sandbox ? { ...vm.sandbox } : undefined,
    health: vm.health?.hung ? { hung: true, reason: vm.health.reason, since: vm.health.since?.toISOString() } : undefined,
  };
}

/** "seccomp filter, uid 999 gid 999, no_new_privs, mount namespace (note)". */
function sandboxText(s: NonNullable<ReturnType<typeof vmView>["sandbox"]>): string {
  const parts = [`seccomp ${s.seccomp}`, `uid ${s.uid} gid ${s.gid}`, ...(s.noNewPrivs ? ["no_new_privs"] : []), s.mountNamespace ? "mount namespace" : "no mount namespace"];
  return parts.join(", ") + (s.note ? ` (${s.note})` : "");
}

function renderVm(vm: Vm): string {
  const v = vmView(vm);
  return fields([
    ["vm", `${v.vmId} (${v.name})`],
    ["state", v.stateReason ? `${v.state} — ${v.stateReason}` : v.state],
    ["vcpus", v.vcpus],
    ["memory", bytes(v.memoryBytes)],
    ["boot", v.boot.kind === "flat" ? `flat image, ${v.boot.mode} mode, load ${v.boot.loadAddress}, entry ${v.boot.entryAddress}` : v.boot.kind === "linux" ? `linux ${v.boot.kernel}${v.boot.initrd ? ` + ${v.boot.initrd}` : ""}, cmdline "${v.boot.cmdline}"` : "demo guest"],
    ["display", v.display],
    ["helper pid", v.helperPid || "-"],
    ...(v.health ? [["helper", `HUNG since ${v.health.since}: ${v.health.reason}`] as [string, string]] : []),
    ["sandbox", v.sandbox ? sandboxText(v.sandbox) : "-"],
    ["created", v.createdAt],
    ["spice clients", v.spiceClients.length === 0 ? "none" : v.spiceClients.map((c) => `${c.peer} ${c.transport} session ${c.sessionId} since ${c.connectedAt} [${c.channels.join(",")}]${c.latencyMs ? ` ${c.latencyMs} ms` : ""}`).join("\n  ")],
  ]);
}

export function registerVm(program: Command, globals: Globals): void {
  const vm = program.command("vm").description("create and drive virtual machines");

  vm.command("create")
    .description("create a VM (and start it with --start)")
    .requiredOption("--name <name>", "VM name")
    .option("--id <vm-id>", "VM id (default: the name)")
    .option("--request-id <id>", "idempotency key; reuse it to retry safely (default: random)")
    .option("--vcpus <n>", "vCPUs", "1")
    .option("--memory <size>", "guest RAM, e.g. 64M", "64M")
    .option("--image <file>", "raw flat binary to boot")
    .option("--load <addr>", "guest-physical load address", "0x100000")
    .option("--entry <addr>", "entry point (default: the load address)")
    .option("--mode <mode>", "long|protected", "long")
    .option("--demo", "boot the demo guest")
    .option("--kernel <file>", "boot Linux: the kernel (vmlinux or bzImage), its path relative to the agent's --images-dir")
    .option("--initrd <file>", "with --kernel: an initramfs, relative to the agent's --images-dir")
    .option("--cmdline <str>", "with --kernel: the kernel command line", "console=ttyS0")
    .option("--display <WxH>", "framebuffer size", "1024x768")
    .option("--image-compression <mode>", "how the SPICE server codes this VM's images (default: the agent's --spice-image-compression)")
    .option("--label <k=v>", "label, repeatable", collect)
    .option("--cpu-weight <n>", "the VM's share of CPU against other VMs, 1..10000 (cgroup cpu.weight)", "100")
    .option("--start", "start the VM once created")
    .action(async (o: { name: string; id?: string; requestId?: string; vcpus: string; memory: string; image?: string; load: string; entry?: string; mode: string; demo?: boolean; kernel?: string; initrd?: string; cmdline: string; display: string; label?: string[]; start?: boolean; imageCompression?: string; cpuWeight: string }) => {
      const options = globals();
      if ([o.image, o.demo, o.kernel].filter(Boolean).length !== 1) throw new Error("give exactly one of --image FILE, --kernel FILE and --demo");
      if (o.initrd && !o.kernel) throw new Error("--initrd goes with --kernel");
      if (o.mode !== "long" && o.mode !== "protected") throw new Error(`--mode ${o.mode}: expected long or protected`);
      const display = /^(\d+)x(\d+)$/.exec(o.display);
      if (!display) throw new Error(`--display ${o.display}: expected WIDTHxHEIGHT, e.g. 1024x768`);
      const load = parseAddress(o.load, "--load");
      const request: CreateVmRequest = {
        vmId: o.id ?? o.name,
        requestId: o.requestId ?? randomUUID(),
        spec: {
          name: o.name,
          vcpus: parseIntIn(o.vcpus, "--vcpus", 1, 4096),
          memoryBytes: BigInt(parseSize(o.memory, "--memory")),
          boot: o.kernel
            ? { $case: "linux", value: { kernel: o.kernel, initrd: o.initrd ?? "", cmdline: o.cmdline } }
            : o.image
            ? { $case: "flatImage", value: { image: readImageFile(o.image), loadAddress: BigInt(load), entryAddress: BigInt(o.entry ? parseAddress(o.entry, "--entry") : load), mode: o.mode === "long" ? CpuMode.CPU_MODE_LONG : CpuMode.CPU_MODE_PROTECTED } }
            : { $case: "demo", value: {} },
          display: { width: Number(display[1]), height: Number(display[2]) },
          labels: parseLabels(o.label ?? [], "--label"),
          imageCompression: o.imageCompression ? compressionNamed(o.imageCompression, "--image-compression") : ImageCompression.IMAGE_COMPRESSION_UNSPECIFIED,
          cpuWeight: parseIntIn(o.cpuWeight, "--cpu-weight", 1, 10000),
        },
      };
      await withClients(options, VmServiceClient, async (c) => {
        const created = await callUnary(c.createVm.bind(c), request, options);
        return o.start ? callUnary(c.startVm.bind(c), { vmId: created.vmId }, options) : created;
      }, { text: renderVm, json: vmView });
    });

  const simple = (verb: "start" | "pause" | "resume", description: string) =>
    vm.command(`${verb} <vm-id>`).description(description).action(async (vmId: string) => {
      const options = globals();
      const method = ({ start: "startVm", pause: "pauseVm", resume: "resumeVm" } as const)[verb];
      await withClients(options, VmServiceClient, (c) => callUnary(c[method].bind(c), { vmId }, options), { text: renderVm, json: vmView });
    });
  simple("start", "run a CREATED VM");
  simple("pause", "take every vCPU out of the guest");
  simple("resume", "let a PAUSED VM run again");

  vm.command("stop <vm-id>")
    .description("power the VM off (guest first, forced after the timeout)")
    .option("--force", "stop at once")
    .option("--timeout-ms <ms>", "grace period for the guest", "10000")
    .action(async (vmId: string, o: { force?: boolean; timeoutMs: string }) => {
      const options = globals();
      const timeoutMs = parseIntIn(o.timeoutMs, "--timeout-ms", 0, 600_000);
      await withClients(options, VmServiceClient, (c) => callUnary(c.stopVm.bind(c), { vmId, force: Boolean(o.force), timeoutMs }, options), { text: renderVm, json: vmView });
    });

  vm.command("delete <vm-id>")
    .description("remove a stopped VM (--force stops it first)")
    .option("--force", "stop a running VM first")
    .action(async (vmId: string, o: { force?: boolean }) => {
      const options = globals();
      await withClients(options, VmServiceClient, async (c) => {
        await callUnary(c.deleteVm.bind(c), { vmId, force: Boolean(o.force) }, options);
        return { vmId, deleted: true };
      }, (r) => `deleted ${r.vmId}`);
    });

  vm.command("get <vm-id>").description("one VM").action(async (vmId: string) => {
    const options = globals();
    await withClients(options, VmServiceClient, (c) => callUnary(c.getVm.bind(c), { vmId }, options), { text: renderVm, json: vmView });
  });

  vm.command("list")
    .description("the VMs of each host")
    .option("--state <state>", "only VMs in this state (created, running, paused, stopped, crashed)")
    .option("--label <k=v>", "only VMs with this label, repeatable", collect)
    .action(async (o: { state?: string; label?: string[] }) => {
      const options = globals();
      let state = VmState.VM_STATE_UNSPECIFIED;
      if (o.state) {
        state = vmStateFromJSON(`VM_STATE_${o.state.toUpperCase()}`);
        if (state === VmState.UNRECOGNIZED) throw new Error(`--state ${o.state}: expected created, running, paused, stopped or crashed`);
      }
      await withClients(options, VmServiceClient, async (c) => (await callUnary(c.listVms.bind(c), { state, labelSelector: parseLabels(o.label ?? [], "--label") }, options)).vms, {
        text: (vms) => table(["VM", "NAME", "STATE", "VCPUS", "MEMORY", "PID"], vms.map(vmView).map((v) => [v.vmId, v.name, v.state, v.vcpus, bytes(v.memoryBytes), v.helperPid || "-"])),
        json: (vms) => vms.map(vmView),
      });
    });

  vm.command("console <vm-id>")
    .description("the serial console: scrollback, then live output; stdin goes to the guest")
    .option("--send <text>", "type this text (\\n for newlines) instead of reading stdin")
    .option("--follow-ms <ms>", "stop after this many milliseconds (default: until Ctrl-] or the VM stops)")
    .action(async (vmId: string, o: { send?: string; followMs?: string }) => {
      const options = globals();
      if (options.host.length > 1) throw new Error("console attaches to one host at a time");
      const followMs = o.followMs === undefined ? undefined : parseIntIn(o.followMs, "--follow-ms", 0, 86_400_000);
      await withClients(options, VmServiceClient, (c) => attachConsole(c, vmId, options, o.send, followMs), () => "");
    });

  vm.command("regs <vm-id>")
    .description("read (or with --set, write) a paused vCPU's registers")
    .option("--vcpu <n>", "vCPU index", "0")
    .option("--set <reg=value>", "general register to write, e.g. rax=0x1, repeatable", collect)
    .action(async (vmId: string, o: { vcpu: string; set?: string[] }) => {
      const options = globals();
      const vcpu = parseIntIn(o.vcpu, "--vcpu", 0, 4095);
      await withClients(options, VmServiceClient, async (c) => {
        if (!o.set?.length) return callUnary(c.getVcpuState.bind(c), { vmId, vcpu }, options);
        const current = await callUnary(c.getVcpuState.bind(c), { vmId, vcpu }, options);
        const regs = { ...current.regs! } as Regs;
        for (const [name, value] of Object.entries(parseLabels(o.set, "--set"))) {
          if (!(name in regs)) throw new Error(`--set ${name}: unknown register (one of ${Object.keys(regs).join(", ")})`);
          (regs as unknown as Record<string, bigint>)[name] = BigInt(parseAddress(value, `--set ${name}`));
        }
        return callUnary(c.setVcpuState.bind(c), { vmId, vcpu, regs }, options);
      }, renderRegs);
    });

  const mem = vm.command("mem").description("guest-physical memory");
  mem.command("read <vm-id> <address> <length>")
    .description("read up to 1 MiB; hexdump, or raw bytes to --out")
    .option("--out <file>", "write the bytes to a file")
    .action(async (vmId: string, address: string, length: string, o: { out?: string }) => {
      const options = globals();
      const addr = parseAddress(address, "address");
      const len = parseIntIn(length, "length", 1, 1 << 20);
      await withClients(options, VmServiceClient, async (c) => {
        const { data } = await callUnary(c.readMemory.bind(c), { vmId, address: BigInt(addr), length: len }, options);
        if (o.out) writeFileSync(o.out, data);
        return { address: hex(addr), length: data.length, hex: Buffer.from(data).toString("hex") };
      }, (r) => (o.out ? `${r.length} bytes written to ${o.out}` : hexdump(Buffer.from(r.hex, "hex"), addr)));
    });
  mem.command("write <vm-id> <address>")
    .description("write bytes given as --hex or read from --file")
    .option("--hex <bytes>", "bytes as hex, e.g. deadbeef")
    .option("--file <file>", "bytes from a file")
    .action(async (vmId: string, address: string, o: { hex?: string; file?: string }) => {
      const options = globals();
      if (Boolean(o.hex) === Boolean(o.file)) throw new Error("give exactly one of --hex and --file");
      if (o.hex && !/^([0-9a-f]{2})+$/i.test(o.hex)) throw new Error(`--hex ${o.hex}: expected an even number of hex digits`);
      const data = o.hex ? Buffer.from(o.hex, "hex") : readFileSync(o.file!);
      const addr = parseAddress(address, "address");
      await withClients(options, VmServiceClient, async (c) => {
        await callUnary(c.writeMemory.bind(c), { vmId, address: BigInt(addr), data }, options);
        return { address: hex(addr), written: data.length };
      }, (r) => `wrote ${r.written} bytes at ${r.address}`);
    });

  vm.command("events [vm-id]")
    .description("VM events: current states first, then events as they happen")
    .option("--from <sequence>", "resume after this sequence number")
    .option("--instance <id>", "the agent instance --from came from (events' instance_id): another one's numbers start with RESYNC")
    .option("--count <n>", "stop after this many events (heartbeats not counted)")
    .action(async (vmId: string | undefined, o: { from?: string; count?: string; instance?: string }) => {
      const options = globals();
      const count = o.count === undefined ? Infinity : parseIntIn(o.count, "--count", 1, 1_000_000);
      const multi = options.host.length > 1;
      await withClients(options, VmServiceClient, (c, host) => watchEvents(c, { vmId: vmId ?? "", fromSequence: BigInt(o.from ?? 0), heartbeatMs: 0, instanceId: o.instance ?? "" }, count, (e) => {
        const view = eventView(e);
        console.log(options.json ? toJson(multi ? { host, ...view } : view, 0) : `${multi ? `${host}  ` : ""}${renderEvent(view)}`);
      }), () => "");
    });

  vm.command("stats <vm-id>").description("exit counters, helper resources, KVM statistics").action(async (vmId: string) => {
    const options = globals();
    await withClients(options, VmServiceClient, (c) => callUnary(c.getVmStats.bind(c), { vmId }, options), { text: renderStats, json: (s) => ({ ...s, state: stateName(s.state) }) });
  });

  registerSnapshot(vm, globals);
  registerMigrate(vm, globals);
}

function eventView(e: VmEvent) {
  return {
    sequence: Number(e.sequence),
    time: e.time?.toISOString(),
    type: vmEventTypeToJSON(e.type).replace("VM_EVENT_TYPE_", ""),
    vmId: e.vmId,
    previousState: e.previousState ? stateName(e.previousState) : undefined,
    state: e.state ? stateName(e.state) : undefined,
    reason: e.reason || undefined,
    instanceId: e.instanceId || undefined,
  };
}

function renderEvent(e: ReturnType<typeof eventView>): string {
  const transition = e.previousState ? `${e.previousState} → ${e.state}` : (e.state ?? "");
  const instance = e.type === "RESYNC" && e.instanceId ? ` (agent instance ${e.instanceId}: earlier numbers do not apply)` : "";
  return `#${e.sequence} ${e.time} ${e.type.padEnd(13)} ${e.vmId} ${transition}${e.reason ? ` (${e.reason})` : ""}${instance}`;
}

function watchEvents(client: VmServiceClient, request: { vmId: string; fromSequence: bigint; heartbeatMs: number; instanceId: string }, count: number, onEvent: (e: VmEvent) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = client.watchVms(request);
    let seen = 0;
    stream.on("data", (e: VmEvent) => {
      if (vmEventTypeToJSON(e.type) === "VM_EVENT_TYPE_HEARTBEAT") return;
      onEvent(e);
      if (++seen >= count) stream.cancel();
    });
    stream.on("error", (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED && seen >= count ? resolve() : reject(err)));
    stream.on("end", resolve);
  });
}

function attachConsole(client: VmServiceClient, vmId: string, options: GlobalOptions, send: string | undefined, followMs: number | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = client.attachConsole();
    const interactive = send === undefined && process.stdin.isTTY;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      if (interactive) process.stdin.setRawMode(false);
      process.stdin.pause();
      stream.cancel();
      resolve();
    };
    stream.write({ vmId, data: send !== undefined ? Buffer.from(send.replaceAll("\\n", "\n")) : Buffer.alloc(0) });
    stream.on("data", (out: { data: Buffer; scrollback: boolean }) => {
      if (options.json) console.log(toJson({ scrollback: out.scrollback, text: Buffer.from(out.data).toString("utf8") }, 0));
      else process.stdout.write(out.data);
    });
    stream.on("error", (err: grpc.ServiceError) => (finished || err.code === grpc.status.CANCELLED ? resolve() : reject(err)));
    stream.on("end", finish);
    if (followMs !== undefined) setTimeout(finish, followMs);
    if (send === undefined) {
      if (interactive) {
        process.stdin.setRawMode(true);
        process.stderr.write("[attached: Ctrl-] to detach]\r\n");
      }
      process.stdin.on("data", (data: Buffer) => {
        if (interactive && data.includes(0x1d)) return finish();
        stream.write({ vmId: "", data });
      });
      // stdin at EOF (< /dev/null, a finished pipe) ends only the input: the output goes on until the
      // VM stops or --follow-ms ends, as with ssh.
      process.stdin.on("end", () => undefined);
    }
  });
}

function renderRegs(s: VcpuState): string {
  const r = s.regs!;
  const names = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"] as const;
  const lines = [];
  for (let i = 0; i < names.length; i += 3) {
    lines.push(names.slice(i, i + 3).map((n) => `${n.padStart(6)}=${hex(r[n], 16)}`).join("  "));
  }
  const sr = s.sregs;
  if (sr) lines.push(`   cr0=${hex(sr.cr0, 16)}     cr3=${hex(sr.cr3, 16)}     cr4=${hex(sr.cr4, 16)}`, `  efer=${hex(sr.efer, 16)}  cs.sel=${hex(sr.cs?.selector ?? 0, 4)} cs.l=${sr.cs?.l ? 1 : 0}`);
  return `vcpu ${s.vcpu}\n${lines.join("\n")}`;
}

function renderStats(s: VmStats): string {
  const rows: [string, unknown][] = [
    ["state", stateName(s.state)],
    ["uptime", `${(Number(s.uptimeMs) / 1000).toFixed(1)} s`],
    ["helper", `rss ${bytes(s.helperRssBytes)}, cpu ${s.helperCpuUserMs} ms user + ${s.helperCpuSystemMs} ms system`],
    ["console", `${s.consoleBytes} bytes`],
  ];
  for (const v of s.vcpus) rows.push([`vcpu ${v.vcpu}`, `exits ${v.exitsTotal} (io ${v.exitsIo}, mmio ${v.exitsMmio}, hlt ${v.exitsHlt}, other ${v.exitsOther})`]);
  return fields(rows);
}

function hexdump(data: Buffer, base: number): string {
  const lines = [];
  for (let i = 0; i < data.length; i += 16) {
    const row = data.subarray(i, i + 16);
    const hexPart = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ").padEnd(47);
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${(base + i).toString(16).padStart(12, "0")}  ${hexPart}  |${ascii}|`);
  }
  return lines.join("\n");
}
