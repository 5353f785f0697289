import { performance } from 'node:perf_hooks';
import type { Logger } from './logger.js';

/**
 * Something that is either working or failing and is retried while it fails
 * (etcd reachable, the fleet view published): logged once when it starts
 * failing, with the error, and once when it works again, with how many retries
 * failed and for how long. Never a line per retry. Beside ThrottledWarning,
 * which is for events that stay frequent rather than for a state.
 */
export class OutageLog {
  readonly #logger: Logger;
  readonly #down: string;
  readonly #up: string;
  #since: number | null = null;
  #retries = 0;

  constructor(logger: Logger, down: string, up: string) {
    this.#logger = logger;
    this.#down = down;
    this.#up = up;
  }

  /** Whether an outage is under way. */
  get failing(): boolean {
    return this.#since !== null;
  }

  /** One failed attempt: the first of an outage is logged (warn, with `fields`), the others counted. */
  failed(fields: Record<string, unknown>): void {
    if (this.#since !== null) {
      this.#retries++;
      return;
    }
    this.#since = performance.now();
    this.#retries = 0;
    this.#logger.warn(fields, this.#down);
  }

  /** A success: ends an outage with one line (info); false when there was none. */
  recovered(fields: Record<string, unknown> = {}): boolean {
    if (this.#since === null) return false;
    const downMs = Math.round(performance.now() - this.#since);
    const retries = this.#retries;
    this.#since = null;
    this.#retries = 0;
    this.#logger.info({ ...fields, retries, downMs }, `${this.#up} after ${retries} ${retries === 1 ? 'retry' : 'retries'}, ${(downMs / 1000).toFixed(1)}s`);
    return true;
  }
}
