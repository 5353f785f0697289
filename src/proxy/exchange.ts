import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { Endpoint, Route } from '../routing/table.js';
import { classifyUpstreamError, ERRORS, sendError, type ProxyError } from './errors.js';
import { responseHeaders } from './headers.js';

/** What every exchange shares with the server that created it. */
export interface ExchangeHost {
  /** Headers added to every proxied response (debug headers, connection: close while draining). */
  responseExtras(exchange: Exchange, headers: string[]): void;
  /** Called exactly once when an exchange ends, however it ends. */
  finished(exchange: Exchange, status: number, error: ProxyError | null): void;
}

const kExchange = Symbol('meridian.exchange');
type TaggedResponse = ServerResponse & { [kExchange]?: Exchange };

function onResponseClose(this: TaggedResponse): void {
  this[kExchange]?.clientClosed();
}

/**
 * One request forwarded to one upstream: an undici dispatch handler that streams
 * the response back with backpressure, and aborts the upstream request if the
 * client goes away first. Uses undici's raw-header handler interface, which its
 * HTTP/1.1 client calls without any conversion.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly route: Route;
  readonly endpoint: Endpoint;
  readonly requestId: string;
  readonly startedAt: number;
  /** A Set-Cookie value assigned by the sticky split, or null. */
  readonly setCookie: string | null;
  readonly #host: ExchangeHost;
  #abort: ((err?: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #sentAt = 0;
  #done = false;
  #clientGone = false;

  constructor(host: ExchangeHost, req: IncomingMessage, res: ServerResponse, route: Route, endpoint: Endpoint, requestId: string, setCookie: string | null, startedAt: number) {
    this.#host = host;
    this.req = req;
    this.res = res;
    this.route = route;
    this.endpoint = endpoint;
    this.requestId = requestId;
    this.setCookie = setCookie;
    this.startedAt = startedAt;
    (res as TaggedResponse)[kExchange] = this;
    res.on('close', onResponseClose);
  }

  /** Sends the request upstream. */
  start(options: Dispatcher.DispatchOptions): void {
    this.endpoint.upstream.outstanding++;
    this.#sentAt = performance.now();
    this.endpoint.upstream.pool.dispatch(options, this);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#clientGone) abort(new Error('client went away'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) {
      if (statusCode === 103) this.#forwardEarlyHints(rawHeaders);
      return true;
    }
    this.endpoint.upstream.recordLatency(performance.now() - this.#sentAt);
    const headers = responseHeaders(rawHeaders);
    if (this.setCookie !== null) headers.push('set-cookie', this.setCookie);
    this.#host.responseExtras(this, headers);
    this.#resume = resume;
    try {
      this.res.writeHead(statusCode, statusText === '' ? undefined : statusText, headers);
    } catch {
      // An upstream header Node refuses to send (bad characters): not forwardable.
      this.#abort?.(new Error('invalid response header'));
      this.#fail(ERRORS.badResponse);
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.#resume as () => void);
    return false;
  }

  onComplete(): void {
    this.res.end();
    this.#finish(this.res.statusCode, null);
  }

  onError(err: Error): void {
    this.#fail(this.#clientGone ? ERRORS.clientAborted : classifyUpstreamError(err));
  }

  /** The client closed its side before the exchange ended: abort the upstream request. */
  clientClosed(): void {
    if (this.#done) return;
    this.#clientGone = true;
    if (this.#abort !== null) this.#abort(new Error('client went away'));
  }

  #fail(error: ProxyError): void {
    if (this.#done) return;
    if (error !== ERRORS.clientAborted) sendError(this.res, error, this.requestId);
    this.#finish(error.status, error);
  }

  #finish(status: number, error: ProxyError | null): void {
    if (this.#done) return;
    this.#done = true;
    this.endpoint.upstream.outstanding--;
    this.#host.finished(this, status, error);
  }

  #forwardEarlyHints(rawHeaders: Buffer[]): void {
    const links: string[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if ((rawHeaders[i] as Buffer).toString('latin1').toLowerCase() === 'link') links.push((rawHeaders[i + 1] as Buffer).toString('latin1'));
    }
    if (links.length > 0 && !this.res.headersSent) this.res.writeEarlyHints({ link: links });
  }
}
