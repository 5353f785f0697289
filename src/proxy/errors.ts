import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { classifyTransportError, type PassiveSignal, type TransportFailure } from '../net/failures.js';
import type { DownstreamResponse } from './downstream.js';
import { answersGrpc, sendGrpcError } from './grpc.js';

/** Who caused an error: the client, the upstream, or Meridian itself. */
export type ErrorSource = 'client' | 'upstream' | 'internal';

/** One entry of the error catalog: stable code, HTTP status, source, retryability, what passive health learns. */
export interface ProxyError {
  readonly code: string;
  readonly status: number;
  readonly source: ErrorSource;
  /** Whether the failure happened before the request reached an upstream, so any method may be retried. */
  readonly beforeSend: boolean;
  readonly message: string;
  /** What the failure tells passive health about the endpoint, or null when it says nothing about it. */
  readonly passive: PassiveSignal | null;
}

function entry(code: string, status: number, source: ErrorSource, beforeSend: boolean, message: string, passive: PassiveSignal | null = null): ProxyError {
  return Object.freeze({ code, status, source, beforeSend, message, passive });
}

/** Every error Meridian answers with itself. Codes are stable: scripts and dashboards rely on them. */
export const ERRORS = Object.freeze({
  badRequest: entry('bad-request', 400, 'client', false, 'Bad request'),
  noRoute: entry('no-route', 404, 'client', false, 'No route matches this host and path'),
  methodNotAllowed: entry('method-not-allowed', 405, 'client', false, 'Method not allowed'),
  requestTimeout: entry('request-timeout', 408, 'client', false, 'The request did not arrive in time'),
  tooManyHeaders: entry('too-many-headers', 431, 'client', false, 'The request has more header fields than this proxy accepts'),
  headersTooLarge: entry('request-headers-too-large', 431, 'client', false, 'The request head is larger than this proxy accepts'),
  unsupportedTransferCoding: entry('unsupported-transfer-coding', 501, 'client', false, 'Only the chunked transfer coding is supported in requests'),
  badGateway: entry('upstream-error', 502, 'upstream', false, 'The upstream failed'),
  connectFailed: entry('upstream-connect-failed', 502, 'upstream', true, 'Could not connect to an upstream', 'connect-refused'),
  tlsFailed: entry('upstream-tls-failed', 502, 'upstream', true, 'Could not establish a verified TLS connection to an upstream', 'tls-failed'),
  upstreamReset: entry('upstream-reset', 502, 'upstream', false, 'The upstream closed the connection', 'reset'),
  upstreamRetired: entry('upstream-retired', 502, 'internal', true, 'The upstream was removed from the routing table before this request reached it'),
  badResponse: entry('upstream-bad-response', 502, 'upstream', false, 'The upstream sent an invalid response'),
  noTable: entry('no-routing-table', 503, 'internal', false, 'No routing table is loaded yet'),
  shuttingDown: entry('shutting-down', 503, 'internal', false, 'This node is shutting down'),
  overloaded: entry('upstream-overloaded', 503, 'internal', false, 'Every upstream that could take this request is at its concurrency limit'),
  queueTimeout: entry('upstream-overloaded', 503, 'internal', true, 'No connection to the upstream became free in time (proxy.maxUpstreamConnections)'),
  outOfSockets: entry('node-out-of-sockets', 503, 'internal', false, 'This node cannot open another connection right now (out of file descriptors)'),
  noHealthyUpstream: entry('no-healthy-upstream', 503, 'internal', false, 'No healthy upstream can take this request'),
  connectTimeout: entry('upstream-connect-timeout', 504, 'upstream', true, 'Timed out connecting to an upstream', 'connect-timeout'),
  upstreamTimeout: entry('upstream-timeout', 504, 'upstream', false, 'The upstream did not answer in time', 'timeout'),
  clientAborted: entry('client-aborted', 499, 'client', false, 'The client went away'),
  internal: entry('internal-error', 500, 'internal', false, 'Internal error'),
});

/** A try that waited for a free connection to its upstream until its deadline, and was never sent. */
export class QueueTimeout extends Error {
  readonly code = 'MERIDIAN_QUEUE_TIMEOUT';
}

/** An upstream answer Meridian refuses to relay, such as a status outside 100-599. */
export class BadUpstreamResponse extends Error {
  readonly code = 'MERIDIAN_BAD_RESPONSE';
}

/** The catalog entry of each transport failure: what the client is answered and whether the try may go elsewhere. */
const BY_FAILURE: Readonly<Record<TransportFailure, ProxyError>> = {
  'connect-refused': ERRORS.connectFailed,
  unreachable: ERRORS.connectFailed,
  'connect-timeout': ERRORS.connectTimeout,
  'tls-failed': ERRORS.tlsFailed,
  timeout: ERRORS.upstreamTimeout,
  reset: ERRORS.upstreamReset,
  retired: ERRORS.upstreamRetired,
  'bad-response': ERRORS.badResponse,
  'bad-request': ERRORS.badRequest,
  aborted: ERRORS.clientAborted,
  'local-limit': ERRORS.outOfSockets,
  queued: ERRORS.queueTimeout,
  error: ERRORS.badGateway,
};

/** Maps an error from undici (or the sockets under it) to the catalog. */
export function classifyUpstreamError(err: Error): ProxyError {
  return BY_FAILURE[classifyTransportError(err)];
}

/** The reason phrase of a status Meridian writes itself. */
export function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

/**
 * Answers with a catalog error: short plain-text body and `x-meridian-error`
 * (a gRPC request gets a Trailers-Only gRPC status instead: see grpc.ts).
 * When the response has already started, the only honest signal left is to
 * cut the connection. Never throws: if even the error cannot be written, the
 * connection is cut.
 */
export function sendError(res: DownstreamResponse, error: ProxyError, requestId: string | undefined, closeConnection = false): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  if (answersGrpc(res)) {
    try {
      sendGrpcError(res, error, requestId);
    } catch {
      res.destroy();
    }
    return;
  }
  const body = `${error.message}\n`;
  const headers: string[] = [
    'content-type', 'text/plain; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
    'x-meridian-error', error.code,
  ];
  if (requestId !== undefined) headers.push('x-request-id', requestId);
  if (error.status === 503) headers.push('retry-after', '1');
  // HTTP/2 has no Connection header: a draining node closes its sessions with GOAWAY instead.
  if (closeConnection && res.req.httpVersionMajor < 2) headers.push('connection', 'close');
  try {
    // The reason phrase is passed explicitly: a failed writeHead leaves its own
    // (possibly invalid) statusMessage on the response, which would be reused.
    res.writeHead(error.status, reasonPhrase(error.status), headers);
    res.end(body);
  } catch {
    res.destroy();
  }
}

/** Writes a complete catalog error on a raw socket (no ServerResponse to write through) and closes it. */
export function sendRawError(socket: Duplex, error: ProxyError, requestId?: string): void {
  const body = `${error.message}\n`;
  socket.end(
    `HTTP/1.1 ${error.status} ${reasonPhrase(error.status)}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `cache-control: no-store\r\nx-meridian-error: ${error.code}\r\n${requestId === undefined ? '' : `x-request-id: ${requestId}\r\n`}connection: close\r\n\r\n${body}`,
  );
}

/** What node:http's parser refuses in a request, as a catalog error: a head too large, one too slow, or malformed. */
export function classifyClientError(err: Error): ProxyError {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'HPE_HEADER_OVERFLOW':
      return ERRORS.headersTooLarge;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return ERRORS.requestTimeout;
    default:
      return ERRORS.badRequest;
  }
}
