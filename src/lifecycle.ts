import type { Logger } from './observability/logger.js';

/** One part of a running node, as the node starts and stops it. */
export interface Component {
  readonly name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
}

/**
 * Starts components in order and stops them in reverse: what starts last
 * (the listeners taking traffic) stops first, and what everything else uses
 * (the table applier, the geo database) stops last. When one fails to start,
 * the ones already started are stopped, so nothing keeps running behind an
 * error. A stop that fails is logged and the others still stop.
 */
export class Lifecycle {
  readonly #logger: Logger;
  readonly #started: Component[] = [];

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Starts each component in turn; on a failure stops the started ones and rethrows. */
  async start(components: readonly Component[]): Promise<void> {
    for (const component of components) {
      try {
        await component.start();
      } catch (err) {
        await this.stop();
        throw err;
      }
      this.#started.push(component);
    }
  }

  /** Stops the started components, last started first. */
  async stop(): Promise<void> {
    for (let component = this.#started.pop(); component !== undefined; component = this.#started.pop()) {
      try {
        await component.stop();
      } catch (err) {
        this.#logger.error({ component: component.name, err: (err as Error).message }, 'component did not stop cleanly');
      }
    }
  }
}
