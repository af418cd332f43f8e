// A small client for qemu's QMP monitor on a unix socket: one JSON object per line each way. It does the
// capabilities handshake, runs one command at a time (`execute`, matched to its answer by id) and keeps
// the asynchronous events qemu sends in between for `nextEvent`.
import net from "node:net";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** An `{"error": …}` answer: qemu's class and its own words. */
export class QmpError extends Error {
  constructor(readonly command: string, readonly errorClass: string, desc: string) {
    super(`qemu refused ${command}: ${desc} (${errorClass})`);
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class QmpClient {
  private buffered = "";
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly events: QmpEvent[] = [];
  private eventWaiters: (() => void)[] = [];
  private closedWith?: Error;

  private constructor(private readonly socket: net.Socket, readonly what: string) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("error", (err) => this.fail(new Error(`QMP of ${what}: ${err.message}`)));
    socket.on("close", () => this.fail(new Error(`QMP of ${what} closed`)));
  }

  /**
   * Connects to `path` (retrying while qemu has not made it yet, up to `timeoutMs`), reads the greeting
   * and leaves capabilities negotiation, so commands can run.
   */
  static async connect(path: string, what: string, timeoutMs = 10_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(path);
          s.once("connect", () => resolve(s));
          s.once("error", reject);
        });
        const client = new QmpClient(socket, what);
        try {
          await client.handshake();
        } catch (err) {
          client.close();
          throw err;
        }
        return client;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== "ENOENT" && code !== "ECONNREFUSED") || Date.now() > deadline) throw new Error(`QMP of ${what} at ${path}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private async handshake(): Promise<void> {
    // The greeting waits under id 0, which no command uses.
    await new Promise((resolve, reject) => this.pending.set(0, { command: "greeting", resolve, reject }));
    await this.execute("qmp_capabilities");
  }

  /** Runs `command` and resolves with its `return` value; an error answer rejects with a QmpError. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  /** The oldest event not taken yet that `match` accepts (others stay), waiting up to `timeoutMs`. */
  async nextEvent(match: (e: QmpEvent) => boolean, timeoutMs: number): Promise<QmpEvent | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.events.findIndex(match);
      if (at >= 0) return this.events.splice(at, 1)[0];
      if (this.closedWith) throw this.closedWith;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.eventWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let end;
    while ((end = this.buffered.indexOf("\n")) >= 0) {
      const line = this.buffered.slice(0, end).trim();
      this.buffered = this.buffered.slice(end + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.fail(new Error(`QMP of ${this.what} sent a line that is not JSON: ${line.slice(0, 200)}`));
      this.socket.destroy();
      return;
    }
    if ("QMP" in msg) {
      this.pending.get(0)?.resolve(msg.QMP);
      this.pending.delete(0);
    } else if ("event" in msg) {
      this.events.push(msg as unknown as QmpEvent);
      const waiters = this.eventWaiters;
      this.eventWaiters = [];
      for (const w of waiters) w();
    } else if (typeof msg.id === "number" && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id)!;
      this.pending.delete(msg.id);
      if ("error" in msg) {
        const e = msg.error as { class?: string; desc?: string };
        p.reject(new QmpError(p.command, e.class ?? "GenericError", e.desc ?? "no description"));
      } else p.resolve(msg.return);
    }
  }

  /** Rejects everything still waiting: the socket is gone or unusable. */
  private fail(err: Error): void {
    this.closedWith ??= err;
    for (const p of this.pending.values()) p.reject(this.closedWith);
    this.pending.clear();
    const waiters = this.eventWaiters;
    this.eventWaiters = [];
    for (const w of waiters) w();
  }
}
