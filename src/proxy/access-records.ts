import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Route, Version } from '../routing/table.js';
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

  /** The line of an upgrade request, when its connection closes (or its answer ends). */
  upgrade(req: DownstreamRequest, head: RequestHead, requestId: string, fields: { status: number; bytesIn: number; bytesOut: number; startedAt: number; upstreamMs: number | null; route: Route; endpoint: { key: string; version: string; region: { name: string } }; error: ProxyError | null }): void {
    if (!this.#log.wants(fields.status)) return;
    this.#log.write({
      type: 'upgrade',
      id: requestId,
      client: this.#resolver.clientText(this.#resolver.peerOf(req.socket), head.forwardedFor),
      method: req.method,
      host: head.host,
      path: req.url,
      protocol: protocolOf(req),
      status: fields.status,
      bytesIn: fields.bytesIn,
      bytesOut: fields.bytesOut,
      durationMs: performance.now() - fields.startedAt,
      upstreamMs: fields.upstreamMs,
      route: fields.route.name,
      service: fields.route.service.name,
      version: fields.endpoint.version,
      region: fields.endpoint.region.name,
      endpoint: fields.endpoint.key,
      tries: 1,
      error: fields.error?.code ?? null,
    });
  }
}
