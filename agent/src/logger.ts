// pino JSON logs: one root logger; child loggers per VM (vm_id) and per RPC.
import { pino, type Logger, type Level } from "pino";

export type { Logger };

export const LOG_LEVELS: readonly Level[] = ["fatal", "error", "warn", "info", "debug", "trace"];

export function createLogger(level: Level, destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
