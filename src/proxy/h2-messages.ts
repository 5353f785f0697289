import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { DownstreamRequest, DownstreamResponse } from './downstream.js';

/** Any of a request body's listeners. */
type BodyListener = ((chunk: Buffer) => void) | (() => void) | ((err: Error) => void);

/** Why a response's stream is reset (RST_STREAM INTERNAL_ERROR). */
const CUT_SHORT = new Error('the response was cut short');

/** Fields HTTP/2 forbids (RFC 9113 8.2.2): an upstream's are dropped, not sent. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * A client's HTTP/2 request over its stream: the head as the stream's HEADERS
 * frame gave it, the body as the stream's DATA. Costs one small object where
 * node:http2's compatibility request is a second stream layered over the first.
 */
export class H2Request implements DownstreamRequest {
  readonly httpVersionMajor = 2;
  readonly stream: ServerHttp2Stream;
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly rawHeaders: string[];
  /** The client sent `TE: trailers`: it reads trailers (gRPC clients always say so). */
  readonly acceptsTrailers: boolean;
  rawTrailers: string[] = [];

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]) {
    this.stream = stream;
    this.method = headers[':method'];
    this.url = headers[':path'];
    this.rawHeaders = rawHeaders;
    this.acceptsTrailers = headers.te === 'trailers';
    // Only a stream with a body can end in trailing HEADERS.
    if (!stream.endAfterHeaders) stream.once('trailers', (trailers: IncomingHttpHeaders) => (this.rawTrailers = flatFields(trailers)));
  }

  /** The session's socket (node:http2 hands out a guarded view of it). */
  get socket(): Socket {
    return this.stream.session?.socket as Socket;
  }

  get complete(): boolean {
    return this.stream.readableEnded;
  }

  /** Whether a body follows the head (the HEADERS frame did not end the stream). */
  get hasBody(): boolean {
    return !this.stream.endAfterHeaders;
  }

  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'end' | 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: string, listener: BodyListener): this {
    this.stream.on(event, listener);
    return this;
  }

  once(event: 'end' | 'close', listener: () => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
  once(event: string, listener: BodyListener): this {
    this.stream.once(event, listener);
    return this;
  }

  off(event: 'data', listener: (chunk: Buffer) => void): this;
  off(event: 'end' | 'close', listener: () => void): this;
  off(event: 'error', listener: (err: Error) => void): this;
  off(event: string, listener: BodyListener): this {
    this.stream.off(event, listener);
    return this;
  }

  pause(): this {
    this.stream.pause();
    return this;
  }

  resume(): this {
    this.stream.resume();
    return this;
  }
}

/** Received fields as a flat `[name, value, ...]` array. */
function flatFields(fields: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name in fields) {
    const value = fields[name];
    if (Array.isArray(value)) for (const one of value) out.push(name, one);
    else if (value !== undefined) out.push(name, value);
  }
  return out;
}

/** A response head as node:http2 sends it: connection-specific fields dropped, repeated names as lists. */
function h2Head(status: number, raw: readonly string[]): { headers: OutgoingHttpHeaders; announcesTrailers: boolean } {
  const headers: OutgoingHttpHeaders = { ':status': status };
  let announcesTrailers = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (CONNECTION_SPECIFIC.has(name)) continue;
    if (name === 'trailer') announcesTrailers = true;
    const value = raw[i + 1] as string;
    const seen = headers[name];
    headers[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [String(seen), value];
  }
  return { headers, announcesTrailers };
}

/**
 * The response on a client's HTTP/2 stream: raw header fields become one
 * HEADERS frame (connection-specific ones dropped, repeated names kept as
 * lists), the body DATA frames, and the last one ends the stream. A response
 * cut short resets the stream, so the client knows it is incomplete.
 *
 * Trailers: a stream can end in trailing HEADERS only if it said so when its
 * head went out, so that is done when they can be expected (the client sent
 * `TE: trailers`, or the head announces `Trailer`); other responses end as
 * before, with nothing more to wait for.
 */
export class H2Response implements DownstreamResponse {
  readonly req: H2Request;
  readonly #stream: ServerHttp2Stream;
  statusCode = 200;
  /** Trailers to send when the body has ended; null: none (yet). */
  #trailers: OutgoingHttpHeaders | null = null;

  constructor(req: H2Request) {
    this.req = req;
    this.#stream = req.stream;
  }

  get headersSent(): boolean {
    return this.#stream.headersSent;
  }

  get destroyed(): boolean {
    return this.#stream.destroyed;
  }

  writeHead(status: number, reasonOrHeaders: string | undefined | string[], fields?: string[]): this {
    const raw = Array.isArray(reasonOrHeaders) ? reasonOrHeaders : (fields ?? []);
    const { headers, announcesTrailers } = h2Head(status, raw);
    this.statusCode = status;
    // The client reset the stream already: nothing to send, the exchange hears 'close'.
    if (this.#stream.destroyed) return this;
    if (this.req.acceptsTrailers || announcesTrailers) {
      this.#stream.respond(headers, { waitForTrailers: true });
      this.#stream.once('wantTrailers', () => this.#sendTrailers());
    } else {
      this.#stream.respond(headers);
    }
    return this;
  }

  /**
   * The whole response as one HEADERS frame that ends the stream, with no DATA
   * frame after it: what gRPC calls Trailers-Only, which a gRPC client reads
   * its status from only when that frame ends the stream.
   */
  endWithHead(status: number, fields: readonly string[]): this {
    this.statusCode = status;
    if (this.#stream.destroyed) return this;
    this.#stream.respond(h2Head(status, fields).headers, { endStream: true });
    return this;
  }

  addTrailers(trailers: Record<string, string | string[]>): void {
    this.#trailers = trailers;
  }

  #sendTrailers(): void {
    if (this.#stream.destroyed) return;
    try {
      this.#stream.sendTrailers(this.#trailers ?? {});
    } catch {
      // A field node:http2 refuses: the client must not take the response for whole.
      this.destroy();
    }
  }

  write(chunk: Buffer): boolean {
    if (this.#stream.destroyed) return true;
    return this.#stream.write(chunk);
  }

  end(body?: string): this {
    if (this.#stream.destroyed) return this;
    if (body === undefined) this.#stream.end();
    else this.#stream.end(body);
    return this;
  }

  writeContinue(): void {
    if (!this.#stream.destroyed && !this.#stream.headersSent) this.#stream.additionalHeaders({ ':status': 100 });
  }

  writeEarlyHints(hints: Record<string, string | string[]>): void {
    if (!this.#stream.destroyed && !this.#stream.headersSent) this.#stream.additionalHeaders({ ':status': 103, ...hints });
  }

  destroy(): this {
    // destroy(), not close(code): close() first ends the stream (END_STREAM) and the
    // client would take a response cut short for a whole one; this resets it.
    if (!this.#stream.destroyed) this.#stream.destroy(CUT_SHORT);
    return this;
  }

  // Listeners are called on the response, as node:http's are (the request path's may use `this`).
  on(event: 'close', listener: (this: H2Response) => void): this {
    this.#stream.on(event, () => listener.call(this));
    return this;
  }

  once(event: 'close' | 'drain', listener: (this: H2Response) => void): this {
    this.#stream.once(event, () => listener.call(this));
    return this;
  }
}
