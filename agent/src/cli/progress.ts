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
