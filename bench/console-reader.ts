// A VM's serial console over gRPC for benchmarks: send keys, wait for a marker in the output.
import type { VmServiceClient, ConsoleOutput } from "../agent/src/gen/qumra/v1/vm.js";

export type ConsoleReader = ReturnType<typeof openConsole>;

export function openConsole(client: VmServiceClient, vmId: string) {
  const stream = client.attachConsole();
  let text = "";
  const waiters = new Set<() => void>();
  stream.on("data", (m: ConsoleOutput) => {
    text += Buffer.from(m.data).toString("latin1");
    for (const w of [...waiters]) w();
  });
  stream.on("error", () => undefined);
  stream.write({ vmId, data: Buffer.alloc(0) });
  return {
    text: () => text,
    send: (s: string) => stream.write({ vmId: "", data: Buffer.from(s) }),
    waitFor: (needle: string, timeoutMs = 30_000, from = 0) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!text.slice(from).includes(needle)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`VM ${vmId}: no '${needle}' on the console within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    close: () => stream.cancel(),
  };
}
