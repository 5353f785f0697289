import { createSecureServer, createServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';

/** A request as an HTTP/2 upstream saw it. */
export interface SeenH2Request {
  readonly headers: IncomingHttpHeaders;
  body: Buffer;
  /** The request's trailing HEADERS, or null when it had none. */
  trailers: IncomingHttpHeaders | null;
}

/** A real HTTP/2 upstream on 127.0.0.1, port 0: over TLS (ALPN h2 only) or plaintext (h2c prior knowledge). */
export interface H2Upstream {
  readonly port: number;
  /** Requests other than Meridian's health checks, in order. */
  readonly seen: SeenH2Request[];
  /** Health checks answered (GET with user-agent meridian-health-check). */
  healthChecks: number;
  /** HTTP/2 connections accepted so far. */
  sessions: number;
  /** Replaces the handler of requests that are not health checks (called once the request body has ended). */
  handle(fn: (stream: ServerHttp2Stream, seen: SeenH2Request) => void): void;
  close(): Promise<void>;
}

/** Starts an HTTP/2-only upstream; it answers 200 `<label> <method> <path>` by default. */
export async function startH2Upstream(label: string, tls?: { cert: string; key: string }): Promise<H2Upstream> {
  const server: Http2Server = tls === undefined ? createServer() : createSecureServer({ cert: tls.cert, key: tls.key, allowHTTP1: false });
  const sessions = new Set<Http2Session>();
  let handler = (stream: ServerHttp2Stream, seen: SeenH2Request): void => {
    stream.respond({ ':status': 200, 'content-type': 'text/plain', 'x-upstream': label });
    stream.end(`${label} ${String(seen.headers[':method'])} ${String(seen.headers[':path'])}`);
  };
  server.on('session', (session: Http2Session) => {
    upstream.sessions++;
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => undefined);
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => undefined);
    if (headers['user-agent'] === 'meridian-health-check') {
      upstream.healthChecks++;
      stream.respond({ ':status': 200 });
      stream.end('health\n');
      return;
    }
    const seen: SeenH2Request = { headers, body: Buffer.alloc(0), trailers: null };
    upstream.seen.push(seen);
    const chunks: Buffer[] = [];
    stream.on('trailers', (trailers: IncomingHttpHeaders) => (seen.trailers = trailers));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      seen.body = Buffer.concat(chunks);
      handler(stream, seen);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const upstream: H2Upstream = {
    port: (server.address() as AddressInfo).port,
    seen: [],
    healthChecks: 0,
    sessions: 0,
    handle(fn) {
      handler = fn;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
  return upstream;
}
