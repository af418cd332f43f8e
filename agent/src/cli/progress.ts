// A progress bar on stderr for long CLI work (silent when stderr is not a terminal or with --json).
import cliProgress from "cli-progress";

/** Progress reporting of long work: the CLI passes a progress bar, tests pass nothing. */
export interface Progress {
  start(total: number, label: string): void;
  increment(by?: number): void;
  stop(): void;
}

export function progressBar(enabled: boolean): Progress {
  if (!enabled || !process.stderr.isTTY) return { start() {}, increment() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: "{label} [{bar}] {percentage}% | {value}/{total} | eta {eta}s", hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let label = "";
  return {
    start(total, l) {
      label = l;
      bar.start(total, 0, { label });
    },
    increment(by = 1) {
      bar.increment(by, { label });
    },
    stop() {
      bar.stop();
    },
  };
}

/** A server stream of progress messages (SnapshotVm, RestoreVm, MigrateVm). */
interface ProgressStream<P> {
  on(event: "data", listener: (p: P) => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  on(event: "end", listener: () => void): unknown;
}

/**
 * Reads a progress stream to its end, moving a bar (stderr, a terminal, not --json) over `at(p)`, and
 * resolves with the last message when `isLast` holds for it; otherwise rejects saying `unfinished`.
 */
export function followProgress<P>(
  stream: ProgressStream<P>,
  label: string,
  enabled: boolean,
  at: (p: P) => { done: number; total: number },
  isLast: (p: P) => boolean,
  unfinished: string,
): Promise<P> {
  const bar = progressBar(enabled);
  let started = false;
  let shown = 0;
  let last: P | undefined;
  return new Promise((resolve, reject) => {
    stream.on("data", (p: P) => {
      last = p;
      const { done, total } = at(p);
      if (!started && total > 0) {
        bar.start(total, label);
        started = true;
      }
      if (started && done > shown) {
        bar.increment(done - shown);
        shown = done;
      }
    });
    stream.on("error", (err) => {
      if (started) bar.stop();
      reject(err);
    });
    stream.on("end", () => {
      if (started) bar.stop();
      if (last === undefined || !isLast(last)) reject(new Error(unfinished));
      else resolve(last);
    });
  });
}
