// Teardown for benchmarks that start processes and servers (agents, VMs, qemu, proxies): steps run in
// reverse order when the work ends, fails, or is interrupted (Ctrl-C, SIGTERM), and child processes are
// killed even when the process exits without running them.
import type { ChildProcess } from "node:child_process";

type Step = () => unknown;

export class Teardown {
  private readonly steps: { what: string; step: Step }[] = [];
  private readonly children = new Set<ChildProcess>();
  private running?: Promise<void>;

  /** Adds a step; steps run last-added first. */
  add(what: string, step: Step): void {
    this.steps.push({ what, step });
  }

  /** A child to SIGTERM at teardown (and SIGKILL at process exit, should it get that far). */
  child(what: string, child: ChildProcess): ChildProcess {
    this.children.add(child);
    const exited = new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve())));
    this.add(what, async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
      this.children.delete(child);
    });
    return child;
  }

  /** Runs every step once (a failing step is reported on stderr; the others still run). */
  run(): Promise<void> {
    this.running ??= (async () => {
      for (const { what, step } of this.steps.reverse()) {
        try {
          await step();
        } catch (err) {
          process.stderr.write(`teardown of ${what}: ${(err as Error).message}\n`);
        }
      }
    })();
    return this.running;
  }

  killChildrenNow(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  }
}

/** Runs `body` with a Teardown that also runs on SIGINT/SIGTERM (then the process exits 130/143). */
export async function withTeardown<T>(body: (teardown: Teardown) => Promise<T>): Promise<T> {
  const teardown = new Teardown();
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: tearing down\n`);
    void teardown.run().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  const onExit = () => teardown.killChildrenNow();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("exit", onExit);
  try {
    return await body(teardown);
  } finally {
    await teardown.run();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("exit", onExit);
  }
}
