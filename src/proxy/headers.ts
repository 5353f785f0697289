/**
 * Header rules of the data plane. Requests and responses are handled as flat raw
 * arrays (`[name, value, name, value, ...]`), never as parsed objects.
 */

/** What one pass over the request headers found, plus the headers to forward. */
export interface RequestHead {
  /** Headers to send upstream: lowercase names, hop-by-hop and forwarding headers removed. */
  readonly forward: string[];
  readonly host: string | undefined;
  readonly forwardedFor: string | undefined;
  readonly forwardedProto: string | undefined;
  readonly forwardedHost: string | undefined;
  readonly via: string | undefined;
  readonly requestId: string | undefined;
  /** Whether a body follows the head (Content-Length above 0, or Transfer-Encoding). */
  readonly hasBody: boolean;
  /** The declared body length; null when not given (chunked) or no body. */
  readonly contentLength: number | null;
}

function join(previous: string | undefined, value: string): string {
  return previous === undefined ? value : `${previous}, ${value}`;
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
    if (name !== '' && name !== 'close' && name !== 'keep-alive') named.add(name);
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
 * forwarding headers Meridian rewrites, and notes what routing needs.
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
  let hasBody = false;
  let contentLength: number | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    switch (name) {
      case 'host':
        host ??= value;
        forward.push(name, value);
        break;
      case 'content-length':
        hasBody = value !== '0';
        contentLength = Number(value);
        forward.push(name, value);
        break;
      case 'transfer-encoding':
        hasBody = true;
        break;
      case 'connection':
        connection = join(connection, value);
        break;
      case 'keep-alive':
      case 'proxy-connection':
      case 'te':
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
        forward.push(name, value);
        break;
      default:
        forward.push(name, value);
    }
  }
  if (connection !== undefined) dropConnectionTokens(forward, connection);
  return { forward, host, forwardedFor, forwardedProto, forwardedHost, via, requestId, hasBody, contentLength };
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
 * `writeHead`, without hop-by-hop headers or those the upstream's Connection names.
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
      case 'trailer':
      case 'upgrade':
        break;
      default:
        out.push(name, (raw[i + 1] as Buffer).toString('latin1'));
    }
  }
  if (connection !== undefined) dropConnectionTokens(out, connection);
  return out;
}
