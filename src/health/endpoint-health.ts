import type { UpstreamTarget } from '../net/upstream-tls.js';
import type { ServiceSpec } from '../config/routing-schema.js';

/** Active-check verdicts an endpoint can be in. */
export type HealthState = 'unchecked' | 'healthy' | 'unhealthy';

/** The active-check settings that, with the address, identify an endpoint's health. */
export type HealthCheckSpec = ServiceSpec['healthCheck'];

/** Passive-ejection settings of the service whose request saw the failure. */
export type OutlierSpec = ServiceSpec['outlier'];

/** Selection ranks: lower is preferred; DOWN never takes traffic unless health is ignored. */
export const RANK_HEALTHY = 0;
/** Not yet checked: takes traffic only where nothing healthy is left. */
export const RANK_UNCHECKED = 1;
/** Failed its checks, or ejected by passive signals. */
export const RANK_DOWN = 2;

/** What a node's control plane tells its data-plane workers about one endpoint identity. */
export interface HealthView {
  readonly key: string;
  readonly state: HealthState;
  readonly rank: number;
  readonly reason: string;
  readonly changedAt: number;
  readonly ejectedUntil: number;
  readonly rampUntil: number;
  readonly lastCheckAt: number;
  readonly lastCheckRttMs: number | null;
}

/** Receives every change of an endpoint's usability, once per flip. */
export interface HealthListener {
  changed(health: EndpointHealth, previousRank: number): void;
}

/**
 * The health of one endpoint identity (address + check settings), shared by
 * every service and routing-table revision that uses it. Active checks set
 * `state`; passive signals eject it for a while. The request path reads only
 * `rank` (a plain field) and, during slow start, `rampFactor()`.
 */
export class EndpointHealth {
  /** Identity: address (with TLS settings) plus the check settings that judge it. */
  readonly key: string;
  /** Where checks connect to, and with which TLS settings. */
  readonly address: UpstreamTarget;
  readonly check: HealthCheckSpec;
  state: HealthState = 'unchecked';
  /** What the request path reads: RANK_HEALTHY, RANK_UNCHECKED or RANK_DOWN. */
  rank = RANK_UNCHECKED;
  /** Why the endpoint is in its state: `unchecked`, `ok`, `connect-refused`, `timeout`, `status-503`, `ejected-5xx`... */
  reason = 'unchecked';
  /** When `rank` last changed (ms since epoch). */
  changedAt = Date.now();
  /** Round-trip time of the last active check in ms; null before the first. */
  lastCheckRttMs: number | null = null;
  /** When the last active check finished (ms since epoch); 0 before the first. */
  lastCheckAt = 0;
  /** Active results in a row, reset by the opposite result. */
  checkSuccesses = 0;
  checkFailures = 0;
  /** Passive: 5xx answers in a row. */
  consecutive5xx = 0;
  /** Passive ejection in force until this time (ms since epoch); 0 when not ejected. */
  ejectedUntil = 0;
  /** Ejections in a row: each one lasts longer, up to the service's maximum. */
  ejections = 0;
  /** When the last ejection ended (ms since epoch). */
  ejectionEndedAt = 0;
  /** Slow start: traffic ramps up until this time after a recovery (ms since epoch). */
  rampUntil = 0;
  rampMs = 0;
  #ejectionTimer: NodeJS.Timeout | null = null;
  readonly #listener: HealthListener;

  constructor(key: string, address: UpstreamTarget, check: HealthCheckSpec, listener: HealthListener) {
    this.key = key;
    this.address = address;
    this.check = check;
    this.#listener = listener;
  }

  /** Whether the request path may send here without ignoring health. */
  get up(): boolean {
    return this.rank !== RANK_DOWN;
  }

  /** Whether passive signals have taken the endpoint out of rotation. */
  get ejected(): boolean {
    return this.ejectedUntil !== 0;
  }

  /** Share of its weight a recovering endpoint gets, 0.1 to 1. */
  rampFactor(now: number): number {
    if (this.rampUntil === 0) return 1;
    const left = this.rampUntil - now;
    if (left <= 0) {
      this.rampUntil = 0;
      return 1;
    }
    return Math.max(0.1, 1 - left / this.rampMs);
  }

  /** An active check passed. */
  checkPassed(rttMs: number): void {
    this.#noteCheck(rttMs);
    this.checkFailures = 0;
    this.checkSuccesses++;
    // A success re-admits a passively ejected endpoint: the checker has just reached it.
    if (this.ejectedUntil !== 0) this.#endEjection();
    const threshold = this.state === 'unchecked' ? 1 : this.check.healthyThreshold;
    if (this.state !== 'healthy' && this.checkSuccesses >= threshold) this.state = 'healthy';
    this.#update(this.state === 'healthy' ? 'ok' : this.reason);
  }

  /** An active check failed for `reason` (`connect-refused`, `timeout`, `status-503`, ...). */
  checkFailed(reason: string, rttMs: number | null): void {
    this.#noteCheck(rttMs);
    this.checkSuccesses = 0;
    this.checkFailures++;
    const threshold = this.state === 'unchecked' ? 1 : this.check.unhealthyThreshold;
    if (this.state !== 'unhealthy' && this.checkFailures >= threshold) this.state = 'unhealthy';
    this.#update(this.state === 'unhealthy' ? reason : this.reason);
  }

  /**
   * Passive ejection: out of rotation for the base time, doubled for each
   * ejection since the endpoint was last healthy on its own, up to the maximum.
   */
  eject(reason: string, spec: OutlierSpec): void {
    if (this.ejectedUntil !== 0) return;
    // A long good spell since the last ejection forgives the earlier ones.
    if (Date.now() - this.ejectionEndedAt > spec.maxEjectionTime) this.ejections = 0;
    const durationMs = Math.min(spec.baseEjectionTime * 2 ** Math.min(this.ejections, 16), spec.maxEjectionTime);
    this.ejections++;
    this.ejectedUntil = Date.now() + durationMs;
    this.#ejectionTimer = setTimeout(() => this.#endEjection(), durationMs);
    this.#ejectionTimer.unref();
    this.#update(reason);
  }

  /** The state workers mirror. */
  view(): HealthView {
    const { key, state, rank, reason, changedAt, ejectedUntil, rampUntil, lastCheckAt, lastCheckRttMs } = this;
    return { key, state, rank, reason, changedAt, ejectedUntil, rampUntil, lastCheckAt, lastCheckRttMs };
  }

  /** Takes the state the control plane decided (a worker's copy checks nothing and ejects nothing itself). */
  applyView(view: HealthView): void {
    this.state = view.state;
    this.reason = view.reason;
    this.ejectedUntil = view.ejectedUntil;
    this.rampUntil = view.rampUntil;
    this.lastCheckAt = view.lastCheckAt;
    this.lastCheckRttMs = view.lastCheckRttMs;
    if (view.rank === this.rank) return;
    const previous = this.rank;
    this.rank = view.rank;
    this.changedAt = view.changedAt;
    this.#listener.changed(this, previous);
  }

  /** Stops timers: the identity is no longer in use. */
  dispose(): void {
    if (this.#ejectionTimer !== null) clearTimeout(this.#ejectionTimer);
    this.#ejectionTimer = null;
  }

  #noteCheck(rttMs: number | null): void {
    this.lastCheckAt = Date.now();
    this.lastCheckRttMs = rttMs;
  }

  #endEjection(): void {
    if (this.#ejectionTimer !== null) clearTimeout(this.#ejectionTimer);
    this.#ejectionTimer = null;
    this.ejectedUntil = 0;
    this.ejectionEndedAt = Date.now();
    this.consecutive5xx = 0;
    this.#update(this.state === 'unhealthy' ? this.reason : 'ok');
  }

  #update(reason: string): void {
    const rank = this.ejectedUntil !== 0 || this.state === 'unhealthy' ? RANK_DOWN : this.state === 'healthy' ? RANK_HEALTHY : RANK_UNCHECKED;
    if (rank === this.rank) return;
    const previous = this.rank;
    this.rank = rank;
    this.reason = reason;
    this.changedAt = Date.now();
    if (previous === RANK_DOWN && rank === RANK_HEALTHY && this.rampMs > 0) this.rampUntil = this.changedAt + this.rampMs;
    if (rank !== RANK_HEALTHY) this.rampUntil = 0;
    this.#listener.changed(this, previous);
  }
}
