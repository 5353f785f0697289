import { Pool, type Dispatcher } from 'undici';
import { formatHostPort } from '../net/address.js';
import { H2_STREAMS_PER_CONNECTION } from '../net/upstream-protocol.js';
import { connectionIdentity, endpointKey, sniFor, type UpstreamTarget, type UpstreamTlsError } from '../net/upstream-tls.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { ThrottledWarning } from '../observability/throttled-warning.js';
import { filteringConnector } from './interim-filter.js';

/** Weight of the newest sample in the response-time moving average. */
const LATENCY_ALPHA = 0.2;

/**
 * A pool whose requests all carry one server name. undici names a TLS
 * connection after each request's Host header and closes it when the next
 * request's differs; Meridian's connector sets the name itself (the target's),
 * so the name undici keys by is made constant and connections are reused
 * whatever hosts the clients ask for.
 */
class TlsPool extends Pool {
  readonly #servername: string;

  constructor(origin: string, options: Pool.Options, servername: string) {
    super(origin, options);
    this.#servername = servername;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    (options as Dispatcher.DispatchOptions & { servername?: string }).servername = this.#servername;
    return super.dispatch(options, handler);
  }
}

/**
 * One upstream address as the data plane sees it: a keep-alive connection pool
 * (created on first use) and the live load used by the balancer. Shared by every
 * service and routing-table revision that sends to this address.
 */
export class Upstream {
  /** Registry identity: address, TLS settings and the pool's connect timeout. */
  readonly key: string;
  readonly address: UpstreamTarget;
  /** Requests sent here and not yet finished. */
  outstanding = 0;
  /** Moving average of the time to response headers, in ms; NaN until measured. */
  latencyMs = Number.NaN;
  readonly #origin: string;
  readonly #connectTimeoutMs: number;
  readonly #maxConnections: number;
  /** Failed TLS handshakes, logged at most every 10 s with OpenSSL's reason; null for plaintext. */
  readonly #tlsWarning: ThrottledWarning | null;
  #pool: Pool | null = null;
  #closed = false;

  /**
   * `maxConnections`: connections this process opens to the address at most (0: no cap); requests beyond wait in the pool.
   * `logger`: where failed TLS handshakes are reported (needed for TLS targets only).
   */
  constructor(address: UpstreamTarget, connectTimeoutMs: number, maxConnections = 0, logger: Logger | null = null) {
    this.address = address;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#maxConnections = maxConnections;
    this.#origin = `${address.tls == null ? 'http' : 'https'}://${formatHostPort(address)}`;
    this.key = upstreamKey(address, connectTimeoutMs);
    this.#tlsWarning = address.tls == null ? null : new ThrottledWarning(logger ?? createLogger(), 'upstream TLS handshake failed: its requests fail with 502 upstream-tls-failed (or go to another endpoint)');
  }

  /**
   * The connection pool, created on first use. A closed upstream gets a closed
   * pool: a request dispatched to it fails at once, before anything is sent,
   * and no connection is ever opened for it.
   */
  get pool(): Pool {
    if (this.#pool === null) {
      const target = this.address;
      const h2 = target.protocol !== undefined;
      const options: Pool.Options = {
        // undici's own connector (with the target's TLS settings and protocol), plus the filter for unsolicited `100 Continue` on HTTP/1.1.
        connect: filteringConnector({ timeout: this.#connectTimeoutMs, noDelay: true }, target, (err) => this.#tlsFailed(err)),
        // HTTP/2 multiplexes: one connection carries many requests (connections stays the cap on sockets).
        pipelining: h2 ? H2_STREAMS_PER_CONNECTION : 1,
        ...(h2 ? { allowH2: true, maxConcurrentStreams: H2_STREAMS_PER_CONNECTION } : {}),
        connections: this.#maxConnections === 0 ? null : this.#maxConnections,
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 600_000,
      };
      this.#pool = target.tls == null ? new Pool(this.#origin, options) : new TlsPool(this.#origin, options, sniFor(target) ?? target.host);
      if (this.#closed) void this.#pool.close();
    }
    return this.#pool;
  }

  #tlsFailed(err: UpstreamTlsError): void {
    const tls = this.address.tls;
    this.#tlsWarning?.note({ endpoint: endpointKey(this.address), serverName: sniFor(this.address) ?? null, ca: tls?.caFile ?? null, reason: err.reason, error: err.message });
  }

  /** Folds one time-to-headers sample into the moving average. */
  recordLatency(ms: number): void {
    this.latencyMs = Number.isNaN(this.latencyMs) ? ms : this.latencyMs + LATENCY_ALPHA * (ms - this.latencyMs);
  }

  /** Whether close() has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the pool once its requests in flight have finished. */
  async close(): Promise<void> {
    this.#closed = true;
    const pool = this.#pool;
    if (pool !== null && !pool.closed && !pool.destroyed) await pool.close();
  }

  /** Closes the pool at once, failing its requests in flight. */
  async destroy(): Promise<void> {
    this.#closed = true;
    const pool = this.#pool;
    if (pool !== null && !pool.destroyed) await pool.destroy();
  }
}

/**
 * How long an upstream the table in force no longer uses stays open. Requests
 * that started on an older table finish on it, retries included: a retry sent
 * after the swap must find the pool open, not closed under it.
 */
export const RETIRE_GRACE_MS = 120_000;

/** The registry key of an upstream: everything that changes its connections, and the connect timeout. */
function upstreamKey(target: UpstreamTarget, connectTimeoutMs: number): string {
  return `${connectionIdentity(target)}|${connectTimeoutMs}`;
}

/** How a process's upstreams are kept. */
export interface UpstreamLimits {
  /** How long an upstream no table uses stays open for requests of older tables. */
  readonly graceMs?: number;
  /** Connections this process opens to each address at most (its share of proxy.maxUpstreamConnections); 0: no cap. */
  readonly maxConnections?: number;
  /** Where failed TLS handshakes are reported; a logger of the process's own settings when not given. */
  readonly logger?: Logger;
}

/** Every upstream in use, keyed by address, TLS settings and connect timeout, so table swaps reuse warm pools. */
export class UpstreamRegistry {
  readonly #upstreams = new Map<string, Upstream>();
  /** Upstreams no table in force uses, each with the timer that closes it. */
  readonly #retired = new Map<Upstream, NodeJS.Timeout>();
  readonly #graceMs: number;
  readonly #maxConnections: number;
  #logger: Logger | null;

  constructor(limits: UpstreamLimits = {}) {
    this.#graceMs = limits.graceMs ?? RETIRE_GRACE_MS;
    this.#maxConnections = limits.maxConnections ?? 0;
    this.#logger = limits.logger ?? null;
  }

  /** The upstream for a target, created (without connecting) on first use; a retired one comes back as it is. */
  acquire(address: UpstreamTarget, connectTimeoutMs: number): Upstream {
    const key = upstreamKey(address, connectTimeoutMs);
    let upstream = this.#upstreams.get(key);
    if (upstream === undefined || upstream.closed) {
      // Only TLS upstreams log; a process that was given no logger makes one the first time it needs it.
      const logger = address.tls == null ? null : (this.#logger ??= createLogger());
      upstream = new Upstream(address, connectTimeoutMs, this.#maxConnections, logger);
      this.#upstreams.set(key, upstream);
    }
    const timer = this.#retired.get(upstream);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#retired.delete(upstream);
    }
    return upstream;
  }

  /**
   * Retires every upstream not in `inUse`: it keeps serving requests of older
   * tables for RETIRE_GRACE_MS, then closes gracefully (requests in flight finish).
   */
  retain(inUse: Iterable<object>): void {
    const keep = new Set(inUse);
    for (const [key, upstream] of this.#upstreams) {
      if (keep.has(upstream) || this.#retired.has(upstream)) continue;
      const timer = setTimeout(() => {
        this.#retired.delete(upstream);
        if (this.#upstreams.get(key) === upstream) this.#upstreams.delete(key);
        void upstream.close();
      }, this.#graceMs);
      timer.unref();
      this.#retired.set(upstream, timer);
    }
  }

  /** Upstreams kept open only for requests of older tables. */
  get retired(): number {
    return this.#retired.size;
  }

  /** Closes every upstream: gracefully, or at once when `force` is set. */
  async closeAll(force = false): Promise<void> {
    for (const timer of this.#retired.values()) clearTimeout(timer);
    this.#retired.clear();
    const all = [...this.#upstreams.values()];
    this.#upstreams.clear();
    await Promise.all(all.map((u) => (force ? u.destroy() : u.close())));
  }
}
