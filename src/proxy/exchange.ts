import type { DownstreamRequest, DownstreamResponse } from './downstream.js';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { Origin } from '../geo/origin.js';
import type { PassiveSink } from './passive-sink.js';
import type { Metrics } from '../observability/metrics.js';
import { selectEndpoint } from '../routing/select.js';
import type { Endpoint, Route, Version } from '../routing/table.js';
import { Attempt, type AttemptOwner } from './attempt.js';
import { BadUpstreamResponse, classifyUpstreamError, ERRORS, sendError, type ProxyError } from './errors.js';
import { isTrailersOnly, writeTrailersOnly } from './grpc.js';
import { responseHeaders, responseTrailers } from './headers.js';
import type { RequestBody } from './request-body.js';
import type { RetryBudget } from './retry-budget.js';

/** What every exchange shares with the server that created it. */
export interface ExchangeHost {
  readonly metrics: Metrics;
  /** Whether the node is shutting down: error answers then close the connection too. */
  readonly draining: boolean;
  /** Headers added to every proxied response (debug headers, connection: close while draining). */
  responseExtras(exchange: Exchange, headers: string[]): void;
  /** Called exactly once when an exchange ends, however it ends. */
  finished(exchange: Exchange, status: number, error: ProxyError | null): void;
  /** The retry budget of a service, kept across routing-table swaps. */
  budgetFor(service: string): RetryBudget;
  /** Where what a try saw goes: passive health decides whether to eject. */
  readonly passive: PassiveSink;
}

/** Everything routing decided for a request, and what is needed to send it again. */
export interface ExchangePlan {
  readonly route: Route;
  readonly version: Version;
  readonly origin: Origin;
  readonly endpoint: Endpoint;
  readonly path: string;
  readonly method: string;
  readonly headers: string[];
  readonly requestId: string;
  /** The request's authority as routing saw it (for the access log). */
  readonly host: string | undefined;
  /** The client's X-Forwarded-For as it came (the access log's client address when the peer is trusted). */
  readonly forwardedFor: string | undefined;
  /** A Set-Cookie value assigned by the sticky split, or null. */
  readonly setCookie: string | null;
  readonly startedAt: number;
  /** Whether the request is gRPC (its Content-Type says so). */
  readonly grpc: boolean;
}

/** Early Hints relayed per request at most; an upstream may send any number, a client needs few. */
const MAX_EARLY_HINTS = 3;

/** Whether a reason phrase can be written as is: HTAB, SP, VCHAR, obs-text (RFC 9112 4). */
function validReason(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127 || c > 255) return false;
  }
  return true;
}

/** Methods whose effect does not depend on how many times they are sent (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Whether a request of this method to this service could be sent again after
 * its body went out (an idempotent method, with retries configured): only then
 * is the body held in memory before the first try. Other bodies stream at once;
 * a try that failed before sending (a refused connect) can still be retried,
 * as nothing of the body was read.
 */
export function mayResendBody(method: string, retryAttempts: number): boolean {
  return retryAttempts > 0 && IDEMPOTENT.has(method);
}

/** Upstream answers worth another try on another endpoint (for idempotent requests). */
function retryableStatus(status: number): boolean {
  return status === 502 || status === 503 || status === 504;
}

const kExchange = Symbol('meridian.exchange');
type TaggedResponse = DownstreamResponse & { [kExchange]?: Exchange };

function onResponseClose(this: TaggedResponse): void {
  this[kExchange]?.clientClosed();
}

/**
 * One client request through to its response: sends tries to endpoints in
 * order (the chosen one, others of its region, then the next regions), streams
 * the first response it commits to back with backpressure, and aborts the
 * upstream request if the client goes away first.
 */
export class Exchange implements AttemptOwner {
  readonly req: DownstreamRequest;
  readonly res: DownstreamResponse;
  readonly plan: ExchangePlan;
  readonly #host: ExchangeHost;
  #body: RequestBody | null = null;
  #endpoint: Endpoint;
  #attempt: Attempt | null = null;
  /** A try whose 5xx answer is being read to its end before the next try goes out. */
  #discarding: Attempt | null = null;
  #next: { endpoint: Endpoint; budget: RetryBudget } | null = null;
  #tried: Endpoint[] | null = null;
  #retriesLeft: number;
  #resume: (() => void) | null = null;
  #done = false;
  #clientGone = false;
  #earlyHints = 0;
  /** The response went out as one HEADERS frame that ended the stream (gRPC Trailers-Only): nothing more is written. */
  #trailersOnly = false;
  /** Response body bytes relayed to the client. */
  #bytesOut = 0;
  /** Until the final try's response head arrived; -1 while none has. */
  #upstreamMs = -1;

  constructor(host: ExchangeHost, req: DownstreamRequest, res: DownstreamResponse, plan: ExchangePlan) {
    this.#host = host;
    this.req = req;
    this.res = res;
    this.plan = plan;
    this.#endpoint = plan.endpoint;
    this.#retriesLeft = plan.route.service.retryAttempts;
    (res as TaggedResponse)[kExchange] = this;
    res.on('close', onResponseClose);
  }

  /** The endpoint of the latest try: the one that answered, when one did. */
  get endpoint(): Endpoint {
    return this.#endpoint;
  }

  get route(): Route {
    return this.plan.route;
  }

  get requestId(): string {
    return this.plan.requestId;
  }

  get startedAt(): number {
    return this.plan.startedAt;
  }

  /** Tries sent so far. */
  get tries(): number {
    return this.#tried?.length ?? 0;
  }

  /** Request body bytes read from the client. */
  get bytesIn(): number {
    return this.#body?.bytes ?? 0;
  }

  /** Response body bytes relayed from the upstream. */
  get bytesOut(): number {
    return this.#bytesOut;
  }

  /** Milliseconds until the final try's response head arrived; null when no try got one. */
  get upstreamMs(): number | null {
    return this.#upstreamMs < 0 ? null : this.#upstreamMs;
  }

  /** Sends the first try, with the request body read as far as replay needs. */
  start(body: RequestBody | null): void {
    if (this.#done) return;
    if (body?.failed === true || this.#clientGone) {
      this.#finish(ERRORS.clientAborted.status, ERRORS.clientAborted);
      return;
    }
    this.#body = body;
    this.#host.budgetFor(this.plan.route.service.name).recordRequest(performance.now());
    this.#send(this.plan.endpoint, null);
  }

  #send(endpoint: Endpoint, budget: RetryBudget | null): void {
    const service = this.plan.route.service;
    const now = performance.now();
    this.#endpoint = endpoint;
    this.#upstreamMs = -1;
    (this.#tried ??= []).push(endpoint);
    const elapsed = now - this.plan.startedAt;
    const remaining = service.requestTimeoutMs === 0 ? Number.POSITIVE_INFINITY : Math.max(1, service.requestTimeoutMs - elapsed);
    const perTry = service.perTryTimeoutMs === 0 ? Number.POSITIVE_INFINITY : service.perTryTimeoutMs;
    const headersTimeout = Math.min(perTry, remaining);
    const attempt = new Attempt(this, endpoint, now, budget, now + headersTimeout);
    this.#attempt = attempt;
    const options: Dispatcher.DispatchOptions = {
      path: this.plan.path,
      method: this.plan.method as Dispatcher.HttpMethod,
      headers: this.plan.headers,
      body: this.#body === null ? null : this.#body.forAttempt(),
      headersTimeout: headersTimeout === Number.POSITIVE_INFINITY ? 0 : Math.ceil(headersTimeout),
      bodyTimeout: service.requestTimeoutMs,
    };
    // false: every connection to the upstream is busy and the try may wait for one.
    if (!endpoint.upstream.pool.dispatch(options, attempt)) attempt.queued(now);
  }

  attemptHeaders(attempt: Attempt, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 100 || statusCode > 599) {
      // node:http would write 600-999 as they are; no client can make sense of them.
      attempt.abort(new BadUpstreamResponse(`invalid status ${statusCode}`));
      this.#fail(ERRORS.badResponse);
      return false;
    }
    if (statusCode < 200) {
      attempt.interim(performance.now());
      if (statusCode === 103 && this.#earlyHints < MAX_EARLY_HINTS) this.#forwardEarlyHints(rawHeaders);
      return true;
    }
    attempt.headReceived();
    const ep = attempt.endpoint;
    this.#upstreamMs = performance.now() - attempt.sentAt;
    ep.upstream.recordLatency(this.#upstreamMs);
    if (statusCode >= 500) this.#host.passive.failure(ep, 'status-5xx');
    else if (ep.health.consecutive5xx !== 0) this.#host.passive.success(ep);
    if (retryableStatus(statusCode) && this.#planRetry(false, `status-${statusCode}`)) {
      // Read the answer to its end (it is small) so the connection stays usable.
      this.#discarding = attempt;
      return true;
    }
    const headers = responseHeaders(rawHeaders);
    if (this.plan.setCookie !== null) headers.push('set-cookie', this.plan.setCookie);
    this.#host.responseExtras(this, headers);
    this.#resume = resume;
    // A reason phrase node:http would refuse (control characters) is replaced by
    // the standard one (undefined: node:http writes the standard phrase).
    const reason = statusText !== '' && this.req.httpVersionMajor < 2 && validReason(statusText) ? statusText : undefined;
    try {
      // A gRPC answer with its status in the head has no body: relayed as it came, or the client would not read the status.
      if (this.plan.grpc && isTrailersOnly(headers) && writeTrailersOnly(this.res, statusCode, headers)) {
        this.#trailersOnly = true;
        return true;
      }
      this.res.writeHead(statusCode, reason, headers);
    } catch {
      // An upstream header Node refuses to send (bad characters): not forwardable.
      attempt.abort(new Error('invalid response header'));
      this.#fail(ERRORS.badResponse);
      return false;
    }
    return true;
  }

  attemptData(attempt: Attempt, chunk: Buffer): boolean {
    if (attempt === this.#discarding || this.#trailersOnly) return true;
    this.#bytesOut += chunk.length;
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.#resume as () => void);
    return false;
  }

  attemptComplete(attempt: Attempt, trailers: unknown): void {
    if (attempt === this.#discarding) {
      this.#sendPlannedRetry();
      return;
    }
    if (this.#trailersOnly) {
      this.#finish(this.res.statusCode, null);
      return;
    }
    // HTTP/1.1 clients get them after the last chunk (a response framed by Content-Length, or to HTTP/1.0, cannot carry them); HTTP/2 clients as trailing HEADERS.
    const relayed = responseTrailers(trailers);
    if (relayed !== null) {
      try {
        this.res.addTrailers(relayed);
      } catch {
        // A trailer Node refuses to send (bad characters): the response cannot be relayed whole.
        this.#fail(ERRORS.badResponse);
        return;
      }
    }
    this.res.end();
    this.#finish(this.res.statusCode, null);
  }

  attemptFailed(attempt: Attempt, err: Error): void {
    if (attempt === this.#discarding) {
      this.#sendPlannedRetry();
      return;
    }
    if (this.#clientGone) return;
    const error = classifyUpstreamError(err);
    if (error.passive !== null) this.#host.passive.failure(attempt.endpoint, error.passive);
    if (!this.res.headersSent && this.#planRetry(error.beforeSend, error.code)) {
      this.#sendPlannedRetry();
      return;
    }
    this.#fail(error);
  }

  /** The client closed its side before the exchange ended: abort the upstream request. */
  clientClosed(): void {
    if (this.#done) return;
    this.#clientGone = true;
    if (this.#attempt === null) return; // still reading the body: start() finishes the exchange
    this.#attempt.abort(new Error('client went away'));
    this.#next?.budget.release();
    this.#next = null;
    this.#finish(ERRORS.clientAborted.status, ERRORS.clientAborted);
  }

  /**
   * Decides whether a failed try is tried again, and where: connect failures
   * for any method, other failures only for idempotent methods whose body can
   * be sent again; within the attempts, the request timeout and the service's
   * retry budget. On yes the next endpoint is reserved in `#next`.
   */
  #planRetry(beforeSend: boolean, reason: string): boolean {
    const service = this.plan.route.service;
    if (this.#retriesLeft <= 0 || this.#clientGone) return false;
    if (!beforeSend && !IDEMPOTENT.has(this.plan.method)) return false;
    if (this.#body !== null && !this.#body.replayable) return false;
    const now = performance.now();
    if (service.requestTimeoutMs !== 0 && now - this.plan.startedAt >= service.requestTimeoutMs) return false;
    const ctx = { exclude: this.#tried, sawFull: false };
    const next = selectEndpoint(this.plan.version, this.plan.origin, service.failWhenAllDown, ctx);
    if (next === null) return false;
    const budget = this.#host.budgetFor(service.name);
    if (!budget.tryAcquire(service.retryBudget, now)) {
      this.#host.metrics.retriesDenied.inc({ service: service.name });
      return false;
    }
    this.#retriesLeft--;
    const metrics = this.#host.metrics;
    metrics.retries.inc({ service: service.name, reason });
    const from = this.#endpoint.region.name;
    if (next.region.name !== from) metrics.failovers.inc({ service: service.name, from, to: next.region.name });
    this.#next = { endpoint: next, budget };
    return true;
  }

  #sendPlannedRetry(): void {
    const next = this.#next;
    this.#next = null;
    this.#discarding = null;
    if (next === null || this.#done) return;
    this.#send(next.endpoint, next.budget);
  }

  #fail(error: ProxyError): void {
    if (this.#done) return;
    sendError(this.res, error, this.plan.requestId, this.#host.draining);
    this.#finish(error.status, error);
  }

  #finish(status: number, error: ProxyError | null): void {
    if (this.#done) return;
    this.#done = true;
    this.#host.finished(this, status, error);
  }

  #forwardEarlyHints(rawHeaders: Buffer[]): void {
    const links: string[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if ((rawHeaders[i] as Buffer).toString('latin1').toLowerCase() === 'link') links.push((rawHeaders[i + 1] as Buffer).toString('latin1'));
    }
    if (links.length === 0 || this.res.headersSent) return;
    this.#earlyHints++;
    try {
      this.res.writeEarlyHints({ link: links });
    } catch {
      // A Link value node:http refuses: the hint is dropped, the response is unaffected.
    }
  }
}
