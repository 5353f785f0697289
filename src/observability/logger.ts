import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Log levels accepted by `--log-level` and `MERIDIAN_LOG_LEVEL`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Creates the process logger: JSON lines on stdout, one per event. */
export function createLogger(level: string = process.env.MERIDIAN_LOG_LEVEL ?? 'info', destination?: NodeJS.WritableStream): Logger {
  const options = { level, base: { service: 'meridian' }, timestamp: pino.stdTimeFunctions.isoTime };
  return destination === undefined ? pino(options) : pino(options, destination);
}
