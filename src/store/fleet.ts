import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from '../observability/logger.js';
import { OutageLog } from '../observability/outage-log.js';

/** Lifetime of a node's key when the node stops renewing it (dies, or loses etcd). */
export const FLEET_TTL_SECONDS = 15;
/** Least time between two writes of a node's view. */
const MIN_INTERVAL_MS = 1_000;

/** One endpoint as a node sees it. */
export interface FleetEndpoint {
  /** The endpoint as routing tables write it (`host:port`, or `https://host:port`); absent in views of older nodes. */
  readonly address?: string;
  readonly up: boolean;
  readonly state: string;
  readonly reason: string;
  readonly since: string;
}

/** What a node publishes at `<prefix>nodes/<node>`. */
export interface NodeView {
  readonly node: string;
  readonly region: string | null;
  readonly revision: number;
  readonly updatedAt: string;
  readonly endpoints: Readonly<Record<string, FleetEndpoint>>;
}

/**
 * Publishes this node's health view under a lease, so the key disappears when
 * the node dies. Rewritten when health changes, at most once a second; a lost
 * lease (etcd was away longer than the TTL) is replaced on the next write.
 */
export class FleetPublisher {
  readonly #client: Etcd3;
  readonly #key: string;
  readonly #view: () => NodeView;
  #lease: Lease | null = null;
  /** Trouble publishing (a lost lease, failed writes) is logged once when it starts and once when it ends, not per retry. */
  readonly #outage: OutageLog;
  #timer: NodeJS.Timeout | null = null;
  #lastWrite = 0;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(client: Etcd3, prefix: string, node: string, view: () => NodeView, logger: Logger) {
    this.#client = client;
    this.#key = `${prefix}nodes/${node}`;
    this.#view = view;
    this.#outage = new OutageLog(logger, 'cannot publish the fleet view (lease lost or etcd away); retrying every 2 s', 'fleet view published again');
  }

  /** Asks for a write soon (rate-limited). */
  changed(): void {
    if (this.#closed || this.#timer !== null) return;
    const wait = Math.max(0, this.#lastWrite + MIN_INTERVAL_MS - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#writing = this.#writing.then(() => this.#write());
    }, wait);
    this.#timer.unref();
  }

  /** Stops publishing and removes the key (revoking the lease). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    await this.#writing;
    await this.#lease?.revoke().catch(() => undefined);
  }

  async #write(): Promise<void> {
    if (this.#closed) return;
    this.#lastWrite = Date.now();
    try {
      if (this.#lease === null || this.#lease.revoked()) {
        const lease = this.#client.lease(FLEET_TTL_SECONDS, { autoKeepAlive: true });
        lease.on('lost', (err) => {
          this.#outage.failed({ err: err.message, key: this.#key });
          if (this.#lease === lease) this.#lease = null;
          this.changed();
        });
        this.#lease = lease;
      }
      await this.#lease.put(this.#key).value(JSON.stringify(this.#view()));
      this.#outage.recovered({ key: this.#key });
    } catch (err) {
      this.#outage.failed({ err: (err as Error).message, key: this.#key });
      this.#lease?.release();
      this.#lease = null;
      const retry = setTimeout(() => this.changed(), 2_000);
      retry.unref();
    }
  }
}
