import { ConfigError } from '../config/issues.js';
import type { StaticConfig } from '../config/static-schema.js';
import { LineWriter } from '../observability/line-writer.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { AccessLog } from './access-log.js';

/** Bytes of access lines a process holds while its writer is behind; past this lines are dropped and counted. */
const MAX_BUFFER_BYTES = 4 * 1024 * 1024;

/** How long shutdown waits for queued access lines to be written. */
const FLUSH_TIMEOUT_MS = 5_000;

/** A process's access log with its writer, started and stopped with the node. */
export interface AccessLogPart {
  readonly name: string;
  /** What the proxy writes to; null when `log.access` is off. */
  readonly log: AccessLog | null;
  start(): void;
  /** Writes what is queued, then closes the file. */
  stop(): Promise<void>;
  /** Opens the file again (logrotate moved it and sent SIGUSR1). */
  reopen(): void;
}

/** The open error of `log.access` as a configuration error naming the field. */
function openError(path: string, err: unknown): ConfigError {
  const e = err as NodeJS.ErrnoException;
  return new ConfigError([{ path: 'log.access', message: `cannot open "${path}" for appending (${e.code ?? 'error'}: ${e.message})` }]);
}

/**
 * The access log of this process per `log.access`. The file is opened at once,
 * so an unwritable path stops the node before it serves (a ConfigError naming
 * log.access).
 */
export function accessLogPart(config: StaticConfig, metrics: Metrics, logger: Logger): AccessLogPart {
  const target = config.log.access;
  if (target === 'off') return { name: 'access log', log: null, start: () => undefined, stop: async () => undefined, reopen: () => undefined };
  let writer: LineWriter;
  try {
    writer = LineWriter.open({ target, maxBufferBytes: MAX_BUFFER_BYTES, onDrop: (lines) => metrics.accessLogDropped.inc(lines), logger });
  } catch (err) {
    throw openError(target, err);
  }
  const log = new AccessLog(writer, config.log.successSample);
  return {
    name: 'access log',
    log,
    start: () => undefined,
    stop: () => writer.close(FLUSH_TIMEOUT_MS),
    reopen: () => writer.reopen(),
  };
}

/** Checks that `log.access` can be opened (a node's primary, whose workers each open it): throws a ConfigError when not. */
export async function checkAccessLog(config: StaticConfig, metrics: Metrics, logger: Logger): Promise<void> {
  await accessLogPart(config, metrics, logger).stop();
}
