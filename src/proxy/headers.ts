/**
 * Header rules of the data plane. Requests and responses are handled as flat raw
 * arrays (`[name, value, name, value, ...]`), never as parsed objects.
 */
import { ERRORS, type ProxyError } from './errors.js';
import { isGrpcContentType } from './grpc.js';
import { validAuthority } from './request-target.js';

/** What one pass over the request headers found, plus the headers to forward. */
export interface RequestHead {
  /** Headers to send upstream: lowercase names, hop-by-hop and forwarding headers removed. */
  readonly forward: string[];
  readonly host: string | undefined;
  readonly forwardedFor: string | undefined;
  readonly forwardedProto: string | undefined;
  readonly forwardedHost: string | undefined;
  readonly via: string | undefined;
  /** The client's x-request-id (never forwarded as is: see `keepsRequestId`). */
  readonly requestId: string | undefined;
  /** Client `x-meridian-*` headers, held back from `forward` (only a split override header goes back). */
  readonly meridian: string[] | null;
  /** Why the head cannot be forwarded at all, or null. */
  readonly error: ProxyError | null;
  /** Whether a body follows the head (Content-Length above 0, or Transfer-Encoding). */
  readonly hasBody: boolean;
  /** The declared body length; null when not given (chunked) or no body. */
  readonly contentLength: number | null;
  /** Whether the Content-Type names gRPC (not gRPC-Web). */
  readonly grpc: boolean;
}

function join(previous: string | undefined, value: string): string {
  return previous === undefined ? value : `${previous}, ${value}`;
}

/**
 * Headers a Connection value cannot remove: Meridian is responsible for them
 * (framing, routing, tracing, forwarding) and sets most of them itself.
 */
const PROTECTED = new Set(['host', 'content-length', 'te', 'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'via']);

/** Whether a lowercase header name is in Meridian's own `x-meridian-` namespace. */
function isMeridianHeader(name: string): boolean {
  return name.length > 11 && name.charCodeAt(0) === 120 /* x */ && name.startsWith('x-meridian-');
}

/** Whether a Transfer-Encoding value is exactly `chunked` (any case, surrounding whitespace allowed). */
function isChunkedOnly(value: string): boolean {
  return value === 'chunked' || value.trim().toLowerCase() === 'chunked';
}

/** Whether a TE value lists `trailers`: the one TE token relayed (the client reads trailers; RFC 9110 10.1.4, and all HTTP/2 allows). */
function acceptsTrailers(value: string): boolean {
  if (value === 'trailers') return true;
  for (const token of value.split(',')) if (token.split(';')[0]?.trim().toLowerCase() === 'trailers') return true;
  return false;
}

/** Drops from a flat header array every header whose name is listed in a Connection value. */
function dropConnectionTokens(headers: string[], connection: string): void {
  // The common values name no header: skip the scan.
  if (connection.length <= 10) {
    const lower = connection.toLowerCase();
    if (lower === 'keep-alive' || lower === 'close') return;
  }
  const named = new Set<string>();
  for (const token of connection.split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '' && name !== 'close' && name !== 'keep-alive' && !PROTECTED.has(name)) named.add(name);
  }
  if (named.size === 0) return;
  let out = 0;
  for (let i = 0; i < headers.length; i += 2) {
    if (named.has(headers[i] as string)) continue;
    headers[out++] = headers[i] as string;
    headers[out++] = headers[i + 1] as string;
  }
  headers.length = out;
}

/**
 * Reads the request headers once: keeps the end-to-end ones for forwarding,
 * drops hop-by-hop ones (RFC 9110 7.6.1, and any named in Connection) and the
 * headers Meridian answers for (forwarding, x-request-id, `x-meridian-*`),
 * notes what routing needs, and finds what makes the head unforwardable
 * (several or malformed Host, a transfer coding other than chunked).
 */
export function readRequestHead(raw: readonly string[]): RequestHead {
  const forward: string[] = [];
  let host: string | undefined;
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  let via: string | undefined;
  let requestId: string | undefined;
  let connection: string | undefined;
  let meridian: string[] | null = null;
  let error: ProxyError | null = null;
  let hasBody = false;
  let hasChunked = false;
  let contentLength: number | null = null;
  let authority = false;
  let cookieAt = -1;
  let teTrailers = false;
  let grpc = false;
  // HTTP/2 requests (their pseudo-headers come first) send each cookie as its own field.
  const h2 = raw.length > 0 && (raw[0] as string).charCodeAt(0) === 58; /* : */
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    switch (name) {
      case 'host':
        // An HTTP/2 request may repeat its :authority as Host (RFC 9113 8.3.1): the same value, once.
        if (authority && value === host) {
          authority = false;
          break;
        }
        // RFC 9112 3.2: several Host lines (or an invalid one) get 400.
        if (host !== undefined || !validAuthority(value)) error ??= ERRORS.badRequest;
        host ??= value;
        forward.push(name, value);
        break;
      case ':authority':
        // HTTP/2: the authority is the host, sent upstream as Host.
        if (host !== undefined || !validAuthority(value)) error ??= ERRORS.badRequest;
        host ??= value;
        authority = true;
        forward.push('host', value);
        break;
      case ':method':
      case ':path':
      case ':scheme':
      case ':protocol':
        break;
      case 'cookie':
        // Joined into one field for the HTTP/1.1 upstream (RFC 9113 8.2.3); HTTP/1.1 requests pass as they came.
        if (!h2) forward.push(name, value);
        else if (cookieAt < 0) {
          cookieAt = forward.length;
          forward.push(name, value);
        } else forward[cookieAt + 1] = `${forward[cookieAt + 1] as string}; ${value}`;
        break;
      case 'content-length':
        hasBody = value !== '0';
        contentLength = Number(value);
        forward.push(name, value);
        break;
      case 'transfer-encoding':
        // Any coding besides one `chunked` (a second line included: the list is
        // their join) would have to be dropped or relayed undecoded (RFC 9112 6.1): 501.
        if (hasChunked || !isChunkedOnly(value)) error = ERRORS.unsupportedTransferCoding;
        hasChunked = true;
        hasBody = true;
        break;
      case 'connection':
        connection = join(connection, value);
        break;
      case 'content-type':
        grpc ||= isGrpcContentType(value);
        forward.push(name, value);
        break;
      case 'te':
        // Hop-by-hop, but `trailers` is meant for the upstream too: it may then send trailers (gRPC requires it).
        teTrailers ||= acceptsTrailers(value);
        break;
      case 'keep-alive':
      case 'proxy-connection':
      case 'trailer':
      case 'upgrade':
      case 'expect':
        break;
      case 'x-forwarded-for':
        forwardedFor = join(forwardedFor, value);
        break;
      case 'x-forwarded-proto':
        forwardedProto ??= value;
        break;
      case 'x-forwarded-host':
        forwardedHost ??= value;
        break;
      case 'via':
        via = join(via, value);
        break;
      case 'x-request-id':
        requestId ??= value;
        break;
      default:
        if (isMeridianHeader(name)) (meridian ??= []).push(name, value);
        else forward.push(name, value);
    }
  }
  if (connection !== undefined) dropConnectionTokens(forward, connection);
  if (teTrailers) forward.push('te', 'trailers');
  return { forward, host, forwardedFor, forwardedProto, forwardedHost, via, requestId, meridian, error, hasBody, contentLength, grpc };
}

/** Puts back the held `x-meridian-*` request headers named `name` (a split override header). */
export function restoreHeld(head: RequestHead, name: string): void {
  const held = head.meridian;
  if (held === null) return;
  for (let i = 0; i < held.length; i += 2) if (held[i] === name) head.forward.push(name, held[i + 1] as string);
}

/** A client's x-request-id is kept only when it is a short token that cannot carry anything else. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/** Whether a client-sent x-request-id may be used as is (the peer is trusted and the id is a safe token). */
export function keepsRequestId(requestId: string | undefined, trusted: boolean): requestId is string {
  return trusted && requestId !== undefined && SAFE_REQUEST_ID.test(requestId);
}

/** Sets `name` (lowercase) in a flat header array: replaces every earlier value with `value`. */
export function setHeader(headers: string[], name: string, value: string): void {
  let out = 0;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === name) continue;
    headers[out++] = headers[i] as string;
    headers[out++] = headers[i + 1] as string;
  }
  headers.length = out;
  headers.push(name, value);
}

/**
 * Turns upstream response headers (raw buffers) into a flat array for
 * `writeHead`, without hop-by-hop headers or those the upstream's Connection
 * names. `Trailer` is kept: it announces trailers, which are relayed.
 */
export function responseHeaders(raw: readonly Buffer[]): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1').toLowerCase();
    switch (name) {
      case 'connection':
        connection = join(connection, (raw[i + 1] as Buffer).toString('latin1'));
        break;
      case 'keep-alive':
      case 'proxy-connection':
      case 'transfer-encoding':
      case 'te':
      case 'upgrade':
        break;
      default:
        // Only Meridian speaks in its own namespace (debug headers are added after this).
        if (!isMeridianHeader(name)) out.push(name, (raw[i + 1] as Buffer).toString('latin1'));
    }
  }
  if (connection !== undefined) dropConnectionTokens(out, connection);
  return out;
}

/** Fields never relayed as trailers: framing, routing and connection fields (RFC 9110 6.5.1; RFC 9113 8.2.2). */
const NOT_TRAILERS = new Set(['content-length', 'transfer-encoding', 'host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

/** Trailers as node:http and node:http2 take them: one entry a name, a list for a repeated one. */
export type Trailers = Record<string, string | string[]>;

function addTrailer(out: Trailers | null, name: string, value: string): Trailers | null {
  if (name.charCodeAt(0) === 58 /* : */ || NOT_TRAILERS.has(name) || isMeridianHeader(name)) return out;
  const trailers = out ?? {};
  const previous = trailers[name];
  trailers[name] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value];
  return trailers;
}

/**
 * An upstream's response trailers, as undici hands them over (raw buffers
 * `[name, value, ...]` from HTTP/1.1; an object from HTTP/2), ready to relay;
 * null when there are none, which is the common case and costs a length or
 * key check only.
 */
export function responseTrailers(raw: unknown): Trailers | null {
  if (raw === null || typeof raw !== 'object') return null;
  let out: Trailers | null = null;
  if (Array.isArray(raw)) {
    for (let i = 0; i + 1 < raw.length; i += 2) out = addTrailer(out, fieldText(raw[i]).toLowerCase(), fieldText(raw[i + 1]));
    return out;
  }
  const fields = raw as Record<string, unknown>;
  for (const name in fields) {
    const value = fields[name];
    if (Array.isArray(value)) for (const one of value) out = addTrailer(out, name.toLowerCase(), fieldText(one));
    else if (value !== undefined) out = addTrailer(out, name.toLowerCase(), fieldText(value));
  }
  return out;
}

/** A field name or value as undici gives it (a Buffer from HTTP/1.1, a string from HTTP/2), as a string. */
function fieldText(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('latin1') : String(value);
}
