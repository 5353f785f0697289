import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Endpoint, Route, Version } from '../routing/table.js';
import { protocolOf, type AccessLog } from './access-log.js';
import type { DownstreamRequest } from './downstream.js';
import type { ProxyError } from './errors.js';
import type { Exchange } from './exchange.js';
import type { RequestHead } from './headers.js';
import type { RequestResolver } from './resolve.js';

/** Body bytes of an answer Meridian writes itself (its message and a newline; nothing when the client is gone). */
function ownBodyBytes(error: ProxyError): number {
  return error.status === 499 ? 0 : error.message.length + 1;
}

/**
 * Builds access records from what the request path already holds. Called only
 * when the access log is on, after the sampling decision, so a request whose
 * line is not written pays nothing here.
 */
export class AccessRecorder {
  readonly #log: AccessLog;
  readonly #resolver: RequestResolver;

  constructor(log: AccessLog, resolver: RequestResolver) {
    this.#log = log;
    this.#resolver = resolver;
  }

  /** The line of a proxied request, once its exchange has ended. */
  exchange(exchange: Exchange, status: number, error: ProxyError | null): void {
    if (!this.#log.wants(status)) return;
    const { req, plan } = exchange;
    const ep = exchange.endpoint;
    this.#log.write({
      type: 'request',
      id: plan.requestId,
      client: this.#resolver.clientText(this.#resolver.peerOf(req.socket), plan.forwardedFor),
      method: plan.method,
      host: plan.host,
      path: req.url,
      protocol: protocolOf(req),
      status,
      bytesIn: exchange.bytesIn,
      bytesOut: error !== null && exchange.bytesOut === 0 ? ownBodyBytes(error) : exchange.bytesOut,
      durationMs: performance.now() - plan.startedAt,
      upstreamMs: exchange.upstreamMs,
      route: plan.route.name,
      service: ep.service,
      version: ep.version,
      region: ep.region.name,
      endpoint: ep.key,
      tries: exchange.tries,
      error: error?.code ?? null,
    });
  }

  /** The line of a request Meridian answered itself before any try: a rejection (with its error) or a redirect. */
  answer(type: 'request' | 'upgrade', req: DownstreamRequest, head: RequestHead, requestId: string, status: number, error: ProxyError | null, startedAt: number, route?: Route, version?: Version): void {
    if (!this.#log.wants(status)) return;
    this.#log.write({
      type,
      id: requestId,
      client: this.#resolver.clientText(this.#resolver.peerOf(req.socket), head.forwardedFor),
      method: req.method,
      host: head.host,
      path: req.url,
      protocol: protocolOf(req),
      status,
      bytesIn: 0,
      bytesOut: error === null ? 0 : ownBodyBytes(error),
      durationMs: performance.now() - startedAt,
      upstreamMs: null,
      route: route?.name ?? null,
      service: route?.service.name ?? null,
      version: version?.name ?? null,
      region: null,
      endpoint: null,
      tries: 0,
      error: error?.code ?? null,
    });
  }

  /** The line of a request node:http's parser refused (malformed, too large, too slow): nothing of it is known. */
  unparsed(socket: Socket, error: ProxyError): void {
    if (!this.#log.wants(error.status)) return;
    this.#log.write({
      type: 'request',
      id: undefined,
      client: this.#resolver.peerOf(socket).address.text,
      method: undefined,
      host: undefined,
      path: undefined,
      protocol: 'HTTP/1.1',
      status: error.status,
      bytesIn: 0,
      bytesOut: ownBodyBytes(error),
      durationMs: 0,
      upstreamMs: null,
      route: null,
      service: null,
      version: null,
      region: null,
      endpoint: null,
      tries: 0,
      error: error.code,
    });
  }

  /** What an upgrade request's line gathers until its connection closes (or its plain answer ends). */
  upgradeLine(req: DownstreamRequest, head: RequestHead, requestId: string, route: Route, endpoint: Endpoint, startedAt: number): UpgradeLine {
    return new UpgradeLine(this, req, head, requestId, route, endpoint, startedAt);
  }

  /** Writes an upgrade's line (UpgradeLine calls this once). */
  writeUpgrade(u: UpgradeLine): void {
    if (!this.#log.wants(u.status)) return;
    this.#log.write({
      type: 'upgrade',
      id: u.requestId,
      client: this.#resolver.clientText(this.#resolver.peerOf(u.req.socket), u.head.forwardedFor),
      method: u.req.method,
      host: u.head.host,
      path: u.req.url,
      protocol: protocolOf(u.req),
      status: u.status,
      bytesIn: u.bytesIn,
      bytesOut: u.bytesOut,
      durationMs: performance.now() - u.startedAt,
      upstreamMs: u.upstreamMs,
      route: u.route.name,
      service: u.route.service.name,
      version: u.endpoint.version,
      region: u.endpoint.region.name,
      endpoint: u.endpoint.key,
      tries: 1,
      error: u.error?.code ?? null,
    });
  }
}

/** An upgrade request's access line in the making: made only when the access log is on. */
export class UpgradeLine {
  status = 0;
  bytesIn = 0;
  bytesOut = 0;
  upstreamMs: number | null = null;
  error: ProxyError | null = null;
  #written = false;

  constructor(
    readonly recorder: AccessRecorder,
    readonly req: DownstreamRequest,
    readonly head: RequestHead,
    readonly requestId: string,
    readonly route: Route,
    readonly endpoint: Endpoint,
    readonly startedAt: number,
  ) {}

  /** The upstream answered (101, or a plain response relayed instead). */
  answered(status: number): void {
    this.status = status;
    this.upstreamMs = performance.now() - this.startedAt;
  }

  /** The try failed; its error is what the client was told (when nothing else was). */
  failed(error: ProxyError): void {
    this.error = error;
    if (this.status === 0) this.status = error.status;
  }

  /** Writes the line, once. */
  end(): void {
    if (this.#written) return;
    this.#written = true;
    this.recorder.writeUpgrade(this);
  }
}
