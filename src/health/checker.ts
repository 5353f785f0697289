import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as connectTls } from 'node:tls';
import { Client } from 'undici';
import { formatHostPort } from '../net/address.js';
import { classifyTransportError } from '../net/failures.js';
import { upstreamConnector } from '../net/upstream-connector.js';
import { isTlsHandshakeError, tlsConnectOptions, UpstreamTlsError } from '../net/upstream-tls.js';
import type { EndpointHealth } from './endpoint-health.js';

/** Share of the interval by which each wait is shortened or stretched at random, so checks do not run in lock-step. */
const JITTER = 0.1;

/** Where a check's outcome goes besides the endpoint's own record. */
export interface CheckObserver {
  /** A check finished with `result` (`ok` or the failure); `tlsError` when a TLS handshake failed. */
  checked(health: EndpointHealth, result: string, tlsError: UpstreamTlsError | null): void;
}

/**
 * Active health checks of one endpoint identity: an HTTP GET of the check path
 * (judged by status; over HTTP/2 for an `h2`/`h2c` endpoint) or a TCP connect, over TLS with the endpoint's own
 * settings when it has them (a TCP check then completes a handshake), at once
 * and then every interval with jitter, each bounded by the check timeout. One
 * checker per identity, however many services share it.
 */
export class ActiveChecker {
  readonly #health: EndpointHealth;
  readonly #observer: CheckObserver;
  #client: Client | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(health: EndpointHealth, observer: CheckObserver) {
    this.#health = health;
    this.#observer = observer;
  }

  /** Runs the first check now and schedules the next ones. */
  start(): void {
    this.#timer = setTimeout(() => void this.#run(), 0);
    this.#timer.unref();
  }

  /** Stops checking; a check in flight is abandoned. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    void this.#client?.destroy().catch(() => undefined);
    this.#client = null;
  }

  async #run(): Promise<void> {
    const check = this.#health.check;
    const startedAt = performance.now();
    let failure: string | null;
    let tlsError: UpstreamTlsError | null = null;
    try {
      failure = check.mode === 'tcp' ? await this.#tcp() : await this.#http();
    } catch (err) {
      failure = classifyTransportError(err as Error);
      if (err instanceof UpstreamTlsError) tlsError = err;
      // A broken connection is not reused for the next check.
      void this.#client?.destroy().catch(() => undefined);
      this.#client = null;
    }
    if (this.#stopped) return;
    const rttMs = Math.round((performance.now() - startedAt) * 100) / 100;
    // A check this process could not even start (out of file descriptors) says nothing about the endpoint.
    if (failure === null) this.#health.checkPassed(rttMs);
    else if (failure !== 'local-limit') this.#health.checkFailed(failure, failure === 'timeout' || failure === 'connect-timeout' ? null : rttMs);
    this.#observer.checked(this.#health, failure ?? 'ok', tlsError);
    const wait = check.interval * (1 - JITTER + 2 * JITTER * Math.random());
    this.#timer = setTimeout(() => void this.#run(), wait);
    this.#timer.unref();
  }

  /** One HTTP check: null when the status is expected, else `status-NNN`. */
  async #http(): Promise<string | null> {
    const check = this.#health.check;
    const target = this.#health.address;
    this.#client ??= new Client(`${target.tls == null ? 'http' : 'https'}://${formatHostPort(target)}`, {
      // The endpoint's own protocol: an HTTP/2 upstream is checked over HTTP/2 (it may speak nothing else).
      connect: upstreamConnector({ timeout: check.timeout }, target),
      ...(target.protocol === undefined ? {} : { allowH2: true }),
      headersTimeout: check.timeout,
      bodyTimeout: check.timeout,
      pipelining: 1,
    });
    const headers: Record<string, string> = { 'user-agent': 'meridian-health-check' };
    if (check.host !== undefined) headers.host = check.host;
    const signal = AbortSignal.timeout(check.timeout);
    const res = await this.#client.request({ path: check.path, method: 'GET', headers, signal });
    // The body is not judged, only drained so the connection can be reused.
    await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    const ok = check.expectedStatus.some((range) => res.statusCode >= range.from && res.statusCode <= range.to);
    return ok ? null : `status-${res.statusCode}`;
  }

  /** One TCP check: null once a connection is established (and, for a TLS endpoint, its handshake completed). */
  #tcp(): Promise<string | null> {
    const target = this.#health.address;
    const tls = target.tls != null;
    return new Promise((resolve, reject) => {
      const socket = tls ? connectTls({ host: target.host, port: target.port, ...tlsConnectOptions(target) }) : connect({ host: target.host, port: target.port });
      socket.setTimeout(this.#health.check.timeout, () => {
        socket.destroy();
        resolve('timeout');
      });
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        socket.destroy();
        resolve(null);
      });
      socket.once('error', (err: Error) => reject(tls && isTlsHandshakeError(err) ? new UpstreamTlsError(err) : err));
    });
  }
}
