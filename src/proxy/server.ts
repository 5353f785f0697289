import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { formatHostPort, listenOn, type HostPort, type PortSharing } from '../net/address.js';
import { normaliseHost } from '../routing/matcher.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { ThrottledWarning } from '../observability/throttled-warning.js';
import { classifyClientError, ERRORS, sendError, sendRawError, type ProxyError } from './errors.js';
import { Exchange, mayResendBody, type ExchangeHost } from './exchange.js';
import { readRequestHead, type RequestHead } from './headers.js';
import { RequestBody } from './request-body.js';
import { RequestResolver, type Rejection, type ResolverOptions, type Target } from './resolve.js';
import { LOCAL_PASSIVE, type PassiveSink } from './passive-sink.js';
import { RetryBudget } from './retry-budget.js';
import type { CertificateSet } from './certificate-set.js';
import type { TicketKeys } from './ticket-keys.js';
import { TlsListener } from './tls-listener.js';
import type { DownstreamRequest, DownstreamResponse } from './downstream.js';
import { DEFAULT_H2_LIMITS, H2Sessions } from './h2.js';
import { H2Request } from './h2-messages.js';
import { sniffPreface } from './h2c.js';
import { handleConnect, UpgradeProxy } from './upgrade.js';
import type { AccessLog } from './access-log.js';
import { AccessRecorder } from './access-records.js';
import type { AcmeChallenges } from './acme-challenges.js';
import type { OutcomeSink } from './outcomes.js';

/** The TLS listener's settings, with its certificates loaded. */
export interface ProxyTlsOptions {
  readonly listen: HostPort;
  readonly certificates: CertificateSet;
  /** Session ticket keys shared by the node's processes, renewed by the node's owner of them. */
  readonly ticketKeys: TicketKeys;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** The Strict-Transport-Security value sent on its responses, or null. */
  readonly hsts: string | null;
}

/** Settings and collaborators of the proxy listener. */
export interface ProxyOptions extends ResolverOptions {
  readonly listen: HostPort;
  readonly debugHeaders: boolean;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** Client connections open at once; more are refused. 0: no cap. */
  readonly maxConnections: number;
  /** HTTPS beside the plaintext listener; absent: plaintext only. */
  readonly tls?: ProxyTlsOptions;
  /** ACME challenges to answer (HTTP-01 before routing, TLS-ALPN-01 on the TLS listener); absent without `proxy.tls.acme`. */
  readonly acme?: AcmeChallenges;
  /** HTTP/2 with prior knowledge on the plaintext listener as well. */
  readonly h2c?: boolean;
  /** How the listening port is held among a node's processes (default: by this process alone). */
  readonly sharing?: PortSharing;
  /** This process's worker number in a node with several (shown in debug headers). */
  readonly worker?: number;
  /** Where passive-health signals go: decided here (the default), or sent to the node's control plane. */
  readonly passive?: PassiveSink;
  /** A line per request and upgraded connection; null or absent when `log.access` is off. */
  readonly accessLog?: AccessLog | null;
  /** Where exchanges' outcomes are counted for rollouts; absent: nowhere. */
  readonly outcomes?: OutcomeSink;
  readonly logger: Logger;
}

/** Whether an HTTP/2 request has a body: its HEADERS frame did not end the stream (no Content-Length needed). */
function h2Body(req: DownstreamRequest): boolean {
  return req instanceof H2Request && req.hasBody;
}

/** A TLS listener's settings and certificates as the admin state shows them. */
export function tlsState(tls: ProxyTlsOptions): Record<string, unknown> {
  return { listen: formatHostPort(tls.listen), minVersion: tls.minVersion, hsts: tls.hsts, ticketKeys: tls.ticketKeys.state(), certificates: tls.certificates.state() };
}

/**
 * The HTTP data plane: a node:http server that routes each request on the
 * routing table in force and forwards it through undici. The request path is
 * ordered phases: read head, match route, split version, steer region, pick
 * endpoint, rewrite headers, dispatch.
 */
export class ProxyServer implements ExchangeHost {
  readonly server: Server;
  readonly #options: ProxyOptions;
  readonly #resolver: RequestResolver;
  readonly #upgrades: UpgradeProxy;
  readonly #budgets = new Map<string, RetryBudget>();
  #inFlight = 0;
  #draining = false;
  #drained: (() => void) | null = null;
  readonly #outOfSockets: ThrottledWarning;
  readonly #tls: TlsListener | null;
  readonly #h2: H2Sessions;
  /** What listens on the plaintext port: the HTTP server itself, or (with h2c) a socket server telling HTTP/2 from HTTP/1.1. */
  readonly #plain: NetServer;
  /** The port plaintext requests are redirected to (the TLS listener's, once bound). */
  #httpsPort = 443;
  readonly #acme: AcmeChallenges | null;
  /** Null when the access log is off: the request path checks this and nothing else. */
  readonly #access: AccessRecorder | null;

  constructor(options: ProxyOptions) {
    this.#options = options;
    this.#acme = options.acme ?? null;
    this.#outOfSockets = new ThrottledWarning(options.logger, 'out of file descriptors: upstream connections fail with 503 node-out-of-sockets; raise the open-file limit or lower proxy.maxConnections');
    this.#resolver = new RequestResolver(options);
    this.#access = (options.accessLog ?? null) === null ? null : new AccessRecorder(options.accessLog as AccessLog, this.#resolver);
    this.#upgrades = new UpgradeProxy(this, this.#resolver, options.logger, this.#access);
    this.server = createServer({
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      connectionsCheckingInterval: 1_000,
      noDelay: true,
    });
    this.server.keepAliveTimeout = options.keepAliveTimeoutMs;
    // One more than allowed, so that a request over the limit is seen (node:http truncates silently).
    this.server.maxHeadersCount = options.maxHeaders + 1;
    if (options.maxConnections > 0) {
      this.server.maxConnections = options.maxConnections;
      this.server.on('drop', () => options.metrics.connectionsRefused.inc());
    }
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res, false));
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res, true));
    this.server.on('connect', handleConnect);
    this.server.on('clientError', (err: Error, socket: Duplex) => this.#clientError(err, socket));
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#upgrades.handle(req, socket, head));
    this.server.on('connection', (socket: Socket) => {
      options.metrics.openConnections.inc();
      socket.once('close', () => options.metrics.openConnections.dec());
    });
    this.#h2 = new H2Sessions(DEFAULT_H2_LIMITS, (req, res, expectContinue) => this.#handle(req, res, expectContinue), options.metrics, options.logger);
    this.#plain =
      options.h2c === true
        ? createNetServer({ noDelay: true }, (socket) =>
            sniffPreface(socket, options.headersTimeoutMs, (s) => this.#h2.accept(s), (s) => this.server.emit('connection', s)),
          )
        : this.server;
    if (this.#plain !== this.server && options.maxConnections > 0) {
      this.#plain.maxConnections = options.maxConnections;
      this.#plain.on('drop', () => options.metrics.connectionsRefused.inc());
    }
    const tls = options.tls;
    this.#tls =
      tls === undefined
        ? null
        : new TlsListener({
            listen: tls.listen,
            certificates: tls.certificates,
            ticketKeys: tls.ticketKeys,
            minVersion: tls.minVersion,
            handshakeTimeoutMs: options.headersTimeoutMs,
            sharing: options.sharing ?? 'own',
            metrics: options.metrics,
            ...(options.acme === undefined ? {} : { challenges: options.acme }),
            // One request path for both listeners and both protocols.
            onConnection: (socket) => (socket.alpnProtocol === 'h2' ? this.#h2.accept(socket) : this.server.emit('connection', socket)),
          });
    if (this.#tls !== null && options.maxConnections > 0) this.#tls.server.maxConnections = options.maxConnections;
  }

  /** The TLS listener as the admin state shows it, or null without one. */
  tlsState(): Record<string, unknown> | null {
    return this.#options.tls === undefined ? null : tlsState(this.#options.tls);
  }

  /** Problems of the TLS certificates (files changed to something unusable; the previous certificate serves). */
  tlsProblems(): { key: string; message: string }[] {
    return this.#options.tls?.certificates.problems() ?? [];
  }

  /** Puts in force the TLS session ticket keys the node's owner of them renewed (48 bytes). */
  setTicketKeys(keys: Buffer): void {
    this.#options.tls?.ticketKeys.set(keys);
  }

  /**
   * Starts the plaintext listener and, with `proxy.tls`, the TLS listener (which
   * then follows certificate changes), on the configured ports unless `ports`
   * says otherwise; resolves with the bound addresses.
   */
  async listen(ports: { plain?: number; tls?: number } = {}): Promise<{ plain: AddressInfo; tls: AddressInfo | null }> {
    const { host, port } = this.#options.listen;
    const plain = await listenOn(this.#plain, host, ports.plain ?? port, this.#options.sharing);
    if (this.#tls === null) return { plain, tls: null };
    let tls: AddressInfo;
    try {
      tls = await this.#tls.listen(ports.tls);
    } catch (err) {
      // Nothing is left listening behind a failed start.
      await new Promise<void>((resolve) => NetServer.prototype.close.call(this.#plain, () => resolve()));
      throw err;
    }
    this.#httpsPort = tls.port;
    this.#options.tls?.certificates.watch();
    return { plain, tls };
  }

  /** ExchangeHost: where passive-health signals go. */
  get passive(): PassiveSink {
    return this.#options.passive ?? LOCAL_PASSIVE;
  }

  /** ExchangeHost: the metrics registry. */
  get metrics(): Metrics {
    return this.#options.metrics;
  }

  /** ExchangeHost: a service's retry budget, created on first use and kept across table swaps. */
  budgetFor(service: string): RetryBudget {
    let budget = this.#budgets.get(service);
    if (budget === undefined) {
      budget = new RetryBudget();
      this.#budgets.set(service, budget);
    }
    return budget;
  }

  /** Requests forwarded and not yet finished. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Whether shutdown has begun. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Graceful shutdown. Draining starts at once: every response from now on
   * carries `Connection: close`. For `delayMs` the listener keeps accepting,
   * so that load balancers have time to see readyz fail; then it closes.
   * Requests in flight finish (up to `timeoutMs`), then whatever is left is closed.
   * With no delay, idle keep-alive connections are closed at once (a fast stop);
   * with one, a keep-alive connection ends only between requests: after its
   * `Connection: close` response or when its keep-alive timeout expires.
   */
  async close(timeoutMs: number, delayMs = 0): Promise<void> {
    this.#draining = true;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    let closed: Promise<void>;
    let settled: Promise<void>;
    this.#options.tls?.certificates.close();
    const tlsClosed = this.#tls?.close() ?? Promise.resolve();
    // HTTP/2 clients are told at once (GOAWAY) to open no new streams; those in flight finish.
    this.#h2.closeGracefully();
    if (delayMs > 0) {
      // http.Server.close() would also destroy idle keep-alive sockets, which a
      // client may be sending on right now: close only the listening socket.
      // The net server calls back once every connection has ended.
      closed = Promise.all([new Promise<void>((resolve) => NetServer.prototype.close.call(this.#plain, () => resolve())), tlsClosed]).then(() => undefined);
      settled = closed;
    } else {
      const plainClosed = new Promise<void>((resolve) => (this.#plain === this.server ? this.server.close(() => resolve()) : NetServer.prototype.close.call(this.#plain, () => resolve())));
      closed = Promise.all([plainClosed, tlsClosed]).then(() => undefined);
      this.server.closeIdleConnections();
      settled = this.#idle();
    }
    this.#options.logger.info({ inFlight: this.#inFlight, upgrades: this.#upgrades.open, timeoutMs }, 'proxy listener closed');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    this.#upgrades.closeAll();
    this.#h2.destroyAll();
    this.server.closeAllConnections();
    await closed;
  }

  /** Resolves once no request or upgraded connection is in flight. */
  #idle(): Promise<void> {
    if (this.#inFlight === 0 && this.#upgrades.open === 0) return Promise.resolve();
    return new Promise<void>((resolve) => (this.#drained = resolve));
  }

  #handle(req: DownstreamRequest, res: DownstreamResponse, expectContinue: boolean): void {
    // ACME HTTP-01 comes before routing and redirects; skipped unless an order waits for validation.
    if (this.#acme?.httpPending === true && this.#answerChallenge(req, res, this.#acme)) return;
    const startedAt = performance.now();
    const head = readRequestHead(req.rawHeaders);
    const resolver = this.#resolver;
    const peer = resolver.peerOf(req.socket);
    const requestId = resolver.requestIdFor(head, peer);
    const target = resolver.resolve(req, head, peer);
    if ('error' in target) return this.#reject(res, target, startedAt, expectContinue, requestId, head);
    if (target.route.spec.redirectToHttps && !peer.secure && this.#tls !== null && target.host !== undefined) return this.#redirect(res, target, startedAt, requestId, head);
    resolver.forwardingHeaders(head.forward, head, peer, target.host, requestId);
    if (expectContinue) res.writeContinue();
    const exchange = new Exchange(this, req, res, {
      route: target.route,
      version: target.version,
      origin: target.origin,
      endpoint: target.endpoint,
      path: target.url,
      method: req.method as string,
      headers: head.forward,
      requestId,
      host: target.host,
      forwardedFor: head.forwardedFor,
      setCookie: target.setCookie,
      startedAt,
      grpc: head.grpc,
    });
    this.#inFlight++;
    if (!head.hasBody && !h2Body(req)) exchange.start(null);
    else if (!mayResendBody(exchange.plan.method, target.route.service.retryAttempts)) exchange.start(RequestBody.streamed(req));
    else void RequestBody.read(req, head.contentLength).then((body) => exchange.start(body));
  }

  /**
   * A request node:http's parser refused (malformed, head too large, too slow):
   * answered like any error of Meridian's own, with its code, unless a
   * response is already under way on the connection or the peer is gone.
   */
  #clientError(err: Error, socket: Duplex): void {
    const inProgress = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' || !socket.writable || inProgress?.headersSent === true) {
      socket.destroy();
      return;
    }
    const error = classifyClientError(err);
    this.#options.metrics.proxyErrors.inc({ code: error.code });
    sendRawError(socket, error);
    this.#access?.unparsed(socket as Socket, error);
  }

  #reject(res: DownstreamResponse, rejection: Rejection, startedAt: number, expectContinue: boolean, requestId: string, head: RequestHead): void {
    // A body in a coding Meridian cannot read cannot be skipped reliably either: close.
    const close = expectContinue || this.#draining || rejection.error === ERRORS.unsupportedTransferCoding;
    sendError(res, rejection.error, requestId, close);
    this.recordRejection(rejection, startedAt);
    this.#access?.answer('request', res.req, head, requestId, rejection.error.status, rejection.error, startedAt, rejection.route, rejection.version);
  }

  /** Answers a pending HTTP-01 token with its key authorization; false when the request asks for something else. */
  #answerChallenge(req: DownstreamRequest, res: DownstreamResponse, acme: AcmeChallenges): boolean {
    const answer = req.method === 'GET' || req.method === 'HEAD' ? acme.httpAnswer(req.url) : undefined;
    if (answer === undefined) return false;
    res.writeHead(200, ['content-type', 'application/octet-stream', 'content-length', String(Buffer.byteLength(answer)), 'cache-control', 'no-store']);
    res.end(req.method === 'HEAD' ? undefined : answer);
    return true;
  }

  /** 308 to the same URL on the TLS listener: the method and body are to be sent again as they were. */
  #redirect(res: DownstreamResponse, target: Target, startedAt: number, requestId: string, head: RequestHead): void {
    const host = normaliseHost(target.host as string);
    const port = this.#httpsPort === 443 ? '' : `:${this.#httpsPort}`;
    res.writeHead(308, ['location', `https://${host}${port}${target.url}`, 'content-length', '0', 'x-request-id', requestId, ...(this.#draining && res.req.httpVersionMajor < 2 ? ['connection', 'close'] : [])]);
    res.end();
    const series = this.#options.metrics.series({ route: target.route.name, service: target.route.service.name, version: target.version.name, region: '' });
    series.observe(308, (performance.now() - startedAt) / 1000);
    this.#access?.answer('request', res.req, head, requestId, 308, null, startedAt, target.route, target.version);
  }

  /** Counts a request Meridian answered itself without reaching an upstream. */
  recordRejection(rejection: Rejection, startedAt: number): void {
    this.#options.metrics.proxyErrors.inc({ code: rejection.error.code });
    rejection.series.observe(rejection.error.status, (performance.now() - startedAt) / 1000);
  }
  /** ExchangeHost: debug headers, and `connection: close` while draining. */
  responseExtras(exchange: Exchange, headers: string[]): void {
    const hsts = this.#options.tls?.hsts;
    if (hsts !== undefined && hsts !== null && (exchange.req.socket as Socket & { encrypted?: boolean }).encrypted === true) headers.push('strict-transport-security', hsts);
    if (this.#options.debugHeaders) {
      const ep = exchange.endpoint;
      headers.push('x-meridian-region', ep.region.name, 'x-meridian-version', ep.version, 'x-meridian-endpoint', ep.key);
      if (this.#options.worker !== undefined) headers.push('x-meridian-worker', String(this.#options.worker));
    }
    if (this.#draining && exchange.req.httpVersionMajor < 2) headers.push('connection', 'close');
  }

  /** ExchangeHost: metrics and drain accounting when an exchange ends. */
  finished(exchange: Exchange, status: number, error: ProxyError | null): void {
    this.#inFlight--;
    const ep = exchange.endpoint;
    const route = exchange.route;
    let series = route.series.get(ep.seriesKey);
    if (series === undefined) {
      series = this.#options.metrics.series({ route: route.name, service: ep.service, version: ep.version, region: ep.region.name });
      route.series.set(ep.seriesKey, series);
    }
    const seconds = (performance.now() - exchange.startedAt) / 1000;
    series.observe(status, seconds);
    this.#options.outcomes?.record(ep.service, ep.version, ep.region.name, status >= 500, seconds * 1000);
    // Request trailers cannot be sent upstream (undici writes none): counted so that dropping them is seen.
    if (exchange.req.rawTrailers.length !== 0) this.#options.metrics.requestTrailersDropped.inc();
    if (error !== null) {
      this.#options.metrics.proxyErrors.inc({ code: error.code });
      if (error === ERRORS.outOfSockets) this.#outOfSockets.note({ endpoint: ep.key });
      if (error.source === 'upstream') this.#options.metrics.upstreamErrors.inc({ service: ep.service, region: ep.region.name, code: error.code });
    }
    this.#access?.exchange(exchange, status, error);
    this.checkDrained();
  }

  /** Resolves a pending shutdown once nothing is in flight. */
  checkDrained(): void {
    if (this.#draining && this.#inFlight === 0 && this.#upgrades.open === 0) this.#drained?.();
  }
}
