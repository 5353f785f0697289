import { errors, type Dispatcher } from 'undici';
import type { Endpoint } from '../routing/table.js';
import { QueueTimeout } from './errors.js';
import type { RetryBudget } from './retry-budget.js';

/** What an attempt reports to the request it belongs to. */
export interface AttemptOwner {
  attemptHeaders(attempt: Attempt, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  attemptData(attempt: Attempt, chunk: Buffer): boolean;
  /** `trailers` as undici gives them: raw buffers from HTTP/1.1 (usually none), an object from HTTP/2. */
  attemptComplete(attempt: Attempt, trailers: unknown): void;
  attemptFailed(attempt: Attempt, err: Error): void;
}

/**
 * One try of a request on one endpoint: the undici dispatch handler (raw-header
 * interface, called by undici's HTTP/1.1 client without conversion). Keeps the
 * endpoint's outstanding count exact however the try ends.
 */
export class Attempt implements Dispatcher.DispatchHandler {
  readonly endpoint: Endpoint;
  /** performance.now() when the try was sent. */
  readonly sentAt: number;
  /** The budget this try (a retry) was taken from, given back when it ends; null for a first try. */
  readonly #budget: RetryBudget | null;
  #owner: AttemptOwner;
  #abort: ((err?: Error) => void) | null = null;
  #abortWith: Error | null = null;
  #settled = false;
  /** performance.now() by which the response head must arrive (Infinity: no limit). */
  readonly #headDeadline: number;
  /** Meridian's own head deadline, armed only once an interim response arrives or the try has to wait for a connection. */
  #deadlineTimer: NodeJS.Timeout | null = null;

  constructor(owner: AttemptOwner, endpoint: Endpoint, sentAt: number, budget: RetryBudget | null, headDeadline = Number.POSITIVE_INFINITY) {
    this.#owner = owner;
    this.endpoint = endpoint;
    this.sentAt = sentAt;
    this.#budget = budget;
    this.#headDeadline = headDeadline;
    endpoint.upstream.outstanding++;
  }

  /**
   * An interim (1xx) response arrived. undici restarts its headers timeout on
   * each one, so an upstream sending them forever would hold the request
   * forever: from the first one on, Meridian keeps the try's deadline itself
   * and fails it as a headers timeout (504, a timeout to retries and passive
   * health). Only tries that see a 1xx pay for the timer.
   */
  interim(now: number): void {
    this.#keepDeadline(now);
  }

  /**
   * Every connection to the upstream was busy when the try was dispatched
   * (proxy.maxUpstreamConnections): it may wait in the pool, where undici's
   * timeouts do not run yet. Meridian keeps the deadline; a try still waiting
   * then fails as never sent (503 upstream-overloaded, nothing held against the
   * endpoint, another endpoint may be tried). Only tries that wait pay for the timer.
   */
  queued(now: number): void {
    this.#keepDeadline(now);
  }

  #keepDeadline(now: number): void {
    if (this.#deadlineTimer !== null || this.#settled || this.#headDeadline === Number.POSITIVE_INFINITY) return;
    this.#deadlineTimer = setTimeout(() => this.#timeOut(), Math.max(0, this.#headDeadline - now));
  }

  /** The final response head arrived: the head deadline no longer applies. */
  headReceived(): void {
    if (this.#deadlineTimer === null) return;
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = null;
  }

  #timeOut(): void {
    this.#deadlineTimer = null;
    if (this.#settled) return;
    // Sent: through undici's abort, so that onError reports it like undici's own headers timeout.
    if (this.#abort !== null) {
      this.#abort(new errors.HeadersTimeoutError());
      return;
    }
    // Still waiting for a connection: undici drops it unsent when it gets one (onConnect).
    const err = new QueueTimeout('no connection to the upstream became free before the deadline');
    this.#settle();
    this.#abortWith = err;
    this.#owner.attemptFailed(this, err);
  }

  /** Whether the try has ended (completed, failed or aborted). */
  get settled(): boolean {
    return this.#settled;
  }

  /** Abandons the try: the upstream request is aborted, its late callbacks are ignored. */
  abort(err: Error): void {
    if (this.#settled) return;
    this.#settle();
    if (this.#abort !== null) this.#abort(err);
    else this.#abortWith = err;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#abortWith !== null) abort(this.#abortWith);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.#settled) return false;
    return this.#owner.attemptHeaders(this, statusCode, rawHeaders, resume, statusText);
  }

  onData(chunk: Buffer): boolean {
    if (this.#settled) return false;
    return this.#owner.attemptData(this, chunk);
  }

  onComplete(trailers: string[] | null): void {
    if (this.#settled) return;
    this.#settle();
    this.#owner.attemptComplete(this, trailers);
  }

  onError(err: Error): void {
    if (this.#settled) return;
    this.#settle();
    this.#owner.attemptFailed(this, err);
  }

  #settle(): void {
    this.headReceived();
    this.#settled = true;
    this.endpoint.upstream.outstanding--;
    this.#budget?.release();
  }
}
