// What every benchmark uses: the statistics helpers and the progress reporting the CLI passes in.
export { median, percentile, round } from "../agent/src/stats.js";
export type { Progress } from "../agent/src/cli/progress.js";
