import type { Socket } from 'node:net';

/**
 * The client's side of an exchange, as the request path uses it: node:http's
 * IncomingMessage and ServerResponse for HTTP/1.1, and Meridian's own thin
 * pair over a node:http2 stream for HTTP/2 (h2-messages.ts), so one request
 * path serves both protocols without node:http2's compatibility layer.
 */

/** A client's request: its head, and its body as a pausable stream of chunks. */
export interface DownstreamRequest {
  readonly method?: string | undefined;
  /** The request target (HTTP/2: `:path`). */
  readonly url?: string | undefined;
  /** Field names and values, alternating, as received (HTTP/2: pseudo-headers included). */
  readonly rawHeaders: string[];
  readonly httpVersionMajor: number;
  /** The connection's socket: its peer address and whether it is TLS. */
  readonly socket: Socket;
  /** Whether the whole body has been received. */
  readonly complete: boolean;
  /** Trailer field names and values, alternating, once the body has ended with trailers; empty otherwise. */
  readonly rawTrailers: string[];
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'end' | 'close', listener: () => void): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
  off(event: 'end' | 'close', listener: () => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/** The response to a client: a head with raw header fields, then a body written with backpressure. */
export interface DownstreamResponse {
  readonly req: DownstreamRequest;
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly statusCode: number;
  /** Throws when a field cannot be sent (bad characters); nothing is written then. */
  writeHead(status: number, reason: string | undefined, headers: string[]): unknown;
  writeHead(status: number, headers: string[]): unknown;
  /** False when the client is not keeping up: wait for 'drain'. */
  write(chunk: Buffer): boolean;
  end(body?: string): unknown;
  /**
   * Trailers sent after the body: HTTP/1.1 after the last chunk (a response
   * framed by Content-Length cannot carry them), HTTP/2 as trailing HEADERS
   * (when the client sent `TE: trailers` or the head announced `Trailer`).
   * Throws when a field cannot be sent (bad characters).
   */
  addTrailers(trailers: Record<string, string | string[]>): void;
  writeContinue(): void;
  writeEarlyHints(hints: Record<string, string | string[]>): void;
  /** Cuts the response: the client sees it incomplete. */
  destroy(): unknown;
  on(event: 'close', listener: () => void): unknown;
  once(event: 'close' | 'drain', listener: () => void): unknown;
}
