import { connectionIdentity, endpointKey, type UpstreamTarget, type UpstreamTlsError } from '../net/upstream-tls.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { ThrottledWarning } from '../observability/throttled-warning.js';
import { ActiveChecker, type CheckObserver } from './checker.js';
import { EndpointHealth, RANK_DOWN, RANK_HEALTHY, type HealthCheckSpec, type HealthListener, type HealthView } from './endpoint-health.js';

export type { HealthCheckSpec } from './endpoint-health.js';

/** The identity of an endpoint for health purposes: address, TLS settings and check settings. */
export function healthKey(address: UpstreamTarget, check: HealthCheckSpec): string {
  const statuses = check.expectedStatus.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`)).join(',');
  const target = check.mode === 'tcp' ? 'tcp' : `${check.host ?? ''}${check.path} ${statuses}`;
  return `${connectionIdentity(address)} ${target} ${check.interval}/${check.timeout} ${check.healthyThreshold}/${check.unhealthyThreshold}`;
}

/** Settings of the registry. */
export interface HealthRegistryOptions {
  /** Run active checks (off in tests of the routing logic itself, and in a worker's copy). */
  readonly activeChecks: boolean;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /**
   * A data-plane worker's copy of the control plane's registry: state arrives
   * through applyViews(); flips are neither logged nor counted here (the
   * control plane does both, once per node).
   */
  readonly mirror?: boolean;
}

const RANK_NAMES = ['healthy', 'unchecked', 'down'];

/**
 * Health of every endpoint, keyed by identity and kept outside the routing
 * table, so a routing-table change never resets it. New identities are checked
 * at once; identities the table no longer uses stop being checked.
 */
export class HealthRegistry implements HealthListener, CheckObserver {
  readonly #entries = new Map<string, { health: EndpointHealth; checker: ActiveChecker | null }>();
  /** Per identity whose checks failed a TLS handshake: OpenSSL's reason, logged at most every 10 s. */
  readonly #tlsWarnings = new Map<EndpointHealth, ThrottledWarning>();
  readonly #options: HealthRegistryOptions;
  readonly #listeners = new Set<(health: EndpointHealth) => void>();
  /** Views of identities this copy does not use yet: applied when a table acquires them. */
  readonly #pendingViews = new Map<string, HealthView>();

  constructor(options: HealthRegistryOptions) {
    this.#options = options;
  }

  /** The health record for an endpoint identity, created (and first checked) on first use. */
  acquire(address: UpstreamTarget, check: HealthCheckSpec, slowStartMs: number): EndpointHealth {
    const key = healthKey(address, check);
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      const health = new EndpointHealth(key, address, check, this);
      const checker = this.#options.activeChecks ? new ActiveChecker(health, this) : null;
      entry = { health, checker };
      this.#entries.set(key, entry);
      checker?.start();
      const view = this.#pendingViews.get(key);
      if (view !== undefined) {
        this.#pendingViews.delete(key);
        health.applyView(view);
      }
    }
    entry.health.rampMs = slowStartMs;
    return entry.health;
  }

  /** Bumped on every change of any endpoint's usability: answers computed under another value are stale. */
  generation = 0;

  /** Calls `listener` after every change of any endpoint's usability, with the endpoint. */
  onChange(listener: (health: EndpointHealth) => void): void {
    this.#listeners.add(listener);
  }

  /** The state of every identity, as workers mirror it. */
  views(): HealthView[] {
    return [...this.#entries.values()].map((entry) => entry.health.view());
  }

  /** A worker's copy: takes the control plane's state of these identities (kept for ones not in use yet). */
  applyViews(views: readonly HealthView[]): void {
    for (const view of views) {
      const entry = this.#entries.get(view.key);
      if (entry === undefined) this.#pendingViews.set(view.key, view);
      else entry.health.applyView(view);
    }
  }

  /** Forgets identities no longer used by the routing table in force, and stops checking them. */
  retain(inUse: Iterable<EndpointHealth>): void {
    const keep = new Set(inUse);
    for (const [key, entry] of this.#entries) {
      if (keep.has(entry.health)) continue;
      entry.checker?.stop();
      entry.health.dispose();
      this.#entries.delete(key);
      this.#tlsWarnings.delete(entry.health);
    }
  }

  /** Every identity tracked. */
  *entries(): Generator<EndpointHealth> {
    for (const entry of this.#entries.values()) yield entry.health;
  }

  /** Number of identities tracked. */
  get size(): number {
    return this.#entries.size;
  }

  /** Stops every checker (shutdown). */
  close(): void {
    for (const entry of this.#entries.values()) {
      entry.checker?.stop();
      entry.health.dispose();
    }
  }

  /** HealthListener: one log line and metric update per flip. */
  changed(health: EndpointHealth, previousRank: number): void {
    this.generation++;
    if (this.#options.mirror === true) {
      for (const listener of this.#listeners) listener(health);
      return;
    }
    const { logger, metrics } = this.#options;
    if (health.ejected && health.rank === RANK_DOWN) metrics.ejections.inc({ reason: health.reason });
    const fields = { endpoint: endpointKey(health.address), check: health.key, from: RANK_NAMES[previousRank], to: RANK_NAMES[health.rank], reason: health.reason };
    if (health.rank === RANK_DOWN) logger.warn(fields, 'endpoint down');
    else if (health.rank === RANK_HEALTHY) logger.info(fields, 'endpoint healthy');
    else logger.info(fields, 'endpoint unchecked');
    for (const listener of this.#listeners) listener(health);
  }

  /** CheckObserver: counts check results; logs why a TLS handshake failed (the endpoint's reason says only `tls-failed`). */
  checked(health: EndpointHealth, result: string, tlsError: UpstreamTlsError | null): void {
    this.#options.metrics.healthChecks.inc({ result });
    if (tlsError === null) return;
    let warning = this.#tlsWarnings.get(health);
    if (warning === undefined) {
      warning = new ThrottledWarning(this.#options.logger, 'health check: upstream TLS handshake failed');
      this.#tlsWarnings.set(health, warning);
    }
    warning.note({ endpoint: endpointKey(health.address), check: health.key, reason: tlsError.reason, error: tlsError.message });
  }
}
