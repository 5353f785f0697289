import { pino, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger } from 'pino';

/** Log levels accepted by `--log-level` and `MERIDIAN_LOG_LEVEL`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Formats of the process log: `auto` is pretty on a terminal and JSON otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

/** A format of the process log as configured. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Whether a format is one of LOG_FORMATS (for MERIDIAN_LOG_FORMAT, which no schema reads). */
export function isLogFormat(value: string): value is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(value);
}

/** What `auto` means here: pretty when stdout is a terminal a person reads, JSON for pipes and files. */
export function prettyWanted(format: LogFormat, stdoutIsTty: boolean = process.stdout.isTTY === true): boolean {
  return format === 'pretty' || (format === 'auto' && stdoutIsTty);
}

/**
 * Creates the process logger: one JSON line per event on stdout (or on
 * `destination`) with the level as its name (`"level":"warn"`), or, when
 * `pretty`, coloured lines for a person at a terminal.
 */
export function createLogger(level: string = process.env.MERIDIAN_LOG_LEVEL ?? 'info', destination?: NodeJS.WritableStream, pretty = false): Logger {
  const options = {
    level,
    base: { service: 'meridian' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (destination !== undefined) return pino(options, destination);
  if (pretty) return pino(options, pinoPretty({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'service' }));
  return pino(options);
}
