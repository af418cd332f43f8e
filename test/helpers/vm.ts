// gRPC helpers for VM tests: a console reader that waits for text, an event collector, a VM factory.
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { VmServiceClient, VmState, type ConsoleOutput, type Vm, type VmEvent, type VmSpec } from "../../agent/src/gen/qumra/v1/vm.js";
import { call } from "./grpc.js";

export interface ConsoleReader {
  text(): string;
  /** Resolves when the output (since attach, or since `from`) contains `needle`; returns the index after it. */
  waitFor(needle: string | RegExp, timeoutMs?: number, from?: number): Promise<number>;
  send(text: string): void;
  ended: Promise<void>;
  close(): void;
}

export function attachConsole(client: VmServiceClient, vmId: string): ConsoleReader {
  const stream = client.attachConsole();
  let output = "";
  const waiters = new Set<() => void>();
  stream.on("data", (m: ConsoleOutput) => {
    output += Buffer.from(m.data).toString("latin1");
    for (const w of waiters) w();
  });
  const ended = new Promise<void>((resolve) => {
    stream.on("end", resolve);
    stream.on("error", () => resolve());
  });
  stream.write({ vmId, data: Buffer.alloc(0) });
  return {
    text: () => output,
    waitFor(needle, timeoutMs = 30_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const rest = output.slice(from);
          const m = typeof needle === "string" ? (rest.includes(needle) ? { index: rest.indexOf(needle), len: needle.length } : undefined) : (() => {
            const r = needle.exec(rest);
            return r ? { index: r.index, len: r[0].length } : undefined;
          })();
          if (!m) return false;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(from + m.index + m.len);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`console of ${vmId}: no ${String(needle)} within ${timeoutMs} ms; got:\n${output}`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
    send(text) {
      stream.write({ vmId: "", data: Buffer.from(text) });
    },
    ended,
    close() {
      stream.cancel();
    },
  };
}

/** The highest "tick N" the demo guest printed in `text` (its heartbeat), or 0. */
export function lastTick(text: string): number {
  let n = 0;
  for (const m of text.matchAll(/tick (\d+)\n/g)) n = Math.max(n, Number(m[1]));
  return n;
}

export function demoSpec(name: string, extra: Partial<VmSpec> = {}): VmSpec {
  return { name, vcpus: 1, memoryBytes: 32n << 20n, boot: { $case: "demo", value: {} }, labels: {}, imageCompression: 0, cpuWeight: 0, ...extra } as VmSpec;
}

export async function createVm(client: VmServiceClient, vmId: string, spec: VmSpec = demoSpec(vmId), start = true): Promise<Vm> {
  const vm = await call(client, client.createVm, { vmId, requestId: randomUUID(), spec });
  return start ? call(client, client.startVm, { vmId }) : vm;
}

export async function waitForState(client: VmServiceClient, vmId: string, state: VmState, timeoutMs = 20_000): Promise<Vm> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const vm = await call(client, client.getVm, { vmId });
    if (vm.state === state) return vm;
    if (Date.now() > deadline) throw new Error(`VM ${vmId} is ${VmState[vm.state]} (${vm.stateReason}), not ${VmState[state]}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Collects WatchVms events until `done` says enough. */
export function watch(client: VmServiceClient, request: { vmId?: string; fromSequence?: bigint; instanceId?: string }, done: (events: VmEvent[]) => boolean, timeoutMs = 20_000): Promise<VmEvent[]> {
  return new Promise((resolve, reject) => {
    const events: VmEvent[] = [];
    const stream = client.watchVms({ vmId: request.vmId ?? "", fromSequence: request.fromSequence ?? 0n, heartbeatMs: 0, instanceId: request.instanceId ?? "" });
    const timer = setTimeout(() => {
      stream.cancel();
      reject(new Error(`watch: condition not met within ${timeoutMs} ms; events: ${JSON.stringify(events.map((e) => [Number(e.sequence), e.type, e.vmId, e.state]))}`));
    }, timeoutMs);
    stream.on("data", (e: VmEvent) => {
      events.push(e);
      if (done(events)) {
        clearTimeout(timer);
        stream.cancel();
        resolve(events);
      }
    });
    stream.on("error", (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) {
        clearTimeout(timer);
        reject(err);
      }
    });
  });
}

/** A flat guest for both 32- and 64-bit mode: writes 'Q' and '\n' to COM1, then halts forever. */
export const TINY_GUEST = Buffer.from([
  0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
  0xb0, 0x51, // mov al, 'Q'
  0xee, // out dx, al
  0xb0, 0x0a, // mov al, '\n'
  0xee, // out dx, al
  0xf4, // hlt
  0xeb, 0xfd, // jmp back to hlt
]);
