import { createServer, constants, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { H2Request, H2Response } from './h2-messages.js';

/** Limits a client's HTTP/2 connection is held to. */
export interface H2Limits {
  /** Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
  /** Bytes of a request's decoded header list (SETTINGS_MAX_HEADER_LIST_SIZE); an HPACK bomb stops there. */
  readonly maxHeaderListSize: number;
  /** Streams a client may reset within `resetWindowMs` before its connection is closed (CVE-2023-44487, rapid reset). */
  readonly maxResets: number;
  readonly resetWindowMs: number;
}

/** The defaults: what browsers and gRPC clients stay well within. */
export const DEFAULT_H2_LIMITS: H2Limits = { maxConcurrentStreams: 128, maxHeaderListSize: 64 * 1024, maxResets: 200, resetWindowMs: 1_000 };

/**
 * The HTTP/2 side of the proxy listeners: connections whose client chose h2
 * (ALPN, or the h2c preface) become sessions whose requests go to `onRequest`,
 * the same request path as HTTP/1.1 (Meridian's thin request and response over
 * each stream stand in for node:http's). Abuse is cut per connection: a client resetting streams
 * faster than the limit, flooding SETTINGS or PING frames, or sending frames
 * that break the protocol loses its connection alone, and it is counted.
 */
export class H2Sessions {
  readonly server: Http2Server;
  readonly #sessions = new Set<Http2Session>();
  readonly #metrics: Metrics;

  constructor(limits: H2Limits, onRequest: (req: H2Request, res: H2Response, expectContinue: boolean) => void, metrics: Metrics, logger: Logger) {
    this.#metrics = metrics;
    this.server = createServer({
      settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderListSize, enablePush: false },
      maxHeaderListPairs: 256,
      // PING frames waiting for their acknowledgement; past it the session is closed (a flood; SETTINGS floods are bounded by node:http2 itself).
      maxOutstandingPings: 10,
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
    });
    // No 'request' listener: node:http2 then leaves out its compatibility layer, which costs more than the proxying around it.
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      const req = new H2Request(stream, headers, rawHeaders);
      onRequest(req, new H2Response(req), headers.expect === '100-continue');
    });
    this.server.on('session', (session: Http2Session) => this.#track(session, limits, logger));
    this.server.on('sessionError', () => this.#metrics.h2SessionsClosed.inc({ reason: 'protocol-error' }));
  }

  /** Takes a connection whose client speaks HTTP/2. */
  accept(socket: Duplex): void {
    this.#metrics.openConnections.inc();
    socket.once('close', () => this.#metrics.openConnections.dec());
    this.server.emit('connection', socket);
  }

  /** Sessions open now. */
  get open(): number {
    return this.#sessions.size;
  }

  /** Tells every client to open no new streams (GOAWAY); streams in flight finish. */
  closeGracefully(): void {
    for (const session of this.#sessions) session.close();
  }

  /** Closes every session now. */
  destroyAll(): void {
    for (const session of this.#sessions) session.destroy();
  }

  #track(session: Http2Session, limits: H2Limits, logger: Logger): void {
    this.#sessions.add(session);
    session.once('close', () => this.#sessions.delete(session));
    session.on('error', () => undefined);
    let windowStart = 0;
    let resets = 0;
    session.on('stream', (stream: ServerHttp2Stream) => {
      stream.on('error', () => undefined);
      stream.once('close', () => {
        // A reset the client sent (not one Meridian sent on finishing or failing a stream).
        if (stream.rstCode === constants.NGHTTP2_NO_ERROR || !stream.aborted) return;
        const now = performance.now();
        if (now - windowStart > limits.resetWindowMs) {
          windowStart = now;
          resets = 0;
        }
        if (++resets <= limits.maxResets || session.destroyed) return;
        this.#metrics.h2SessionsClosed.inc({ reason: 'rapid-reset' });
        logger.warn({ client: session.socket?.remoteAddress, resets, windowMs: limits.resetWindowMs }, 'closing an HTTP/2 connection that resets streams too fast');
        session.destroy();
      });
    });
  }
}
