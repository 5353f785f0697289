import { performance } from 'node:perf_hooks';
import type { Logger } from './logger.js';

/**
 * A warning that may fire thousands of times a second (every request while a
 * process is out of file descriptors): logged at most once per interval, with
 * how many times it happened since the last line.
 */
export class ThrottledWarning {
  readonly #logger: Logger;
  readonly #message: string;
  readonly #intervalMs: number;
  #loggedAt = Number.NEGATIVE_INFINITY;
  #since = 0;

  constructor(logger: Logger, message: string, intervalMs = 10_000) {
    this.#logger = logger;
    this.#message = message;
    this.#intervalMs = intervalMs;
  }

  /** Counts one occurrence; logs it when the interval since the last line has passed. */
  note(fields: Record<string, unknown>): void {
    this.#since++;
    const now = performance.now();
    if (now - this.#loggedAt < this.#intervalMs) return;
    this.#logger.warn({ ...fields, occurrences: this.#since }, this.#message);
    this.#loggedAt = now;
    this.#since = 0;
  }
}
