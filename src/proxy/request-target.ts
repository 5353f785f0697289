/**
 * The request target and authority as Meridian trusts them: Host syntax
 * (RFC 9110 7.2, RFC 3986 3.2.2), absolute-form targets (RFC 9112 3.2.2) and
 * path normalisation (RFC 3986 6.2.2), so that routing decides on the same
 * path the upstream is sent and no two spellings of a path route differently.
 */

/** What to do with `%2F` and `%5C` in a path (Envoy's path_with_escaped_slashes_action). */
export type EscapedSlashes = 'keep' | 'reject' | 'unescape';

/** Character classes of authority bytes; 0 = not allowed. */
const REG_NAME = 1; // unreserved / sub-delims: allowed anywhere in a reg-name
const HEX = 2;
const AUTHORITY = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=") AUTHORITY[c.charCodeAt(0)] = REG_NAME;
for (const c of '0123456789abcdefABCDEF') AUTHORITY[c.charCodeAt(0)] = REG_NAME | HEX;

function isHex(code: number): boolean {
  return code < 128 && ((AUTHORITY[code] as number) & HEX) !== 0;
}

function isDigits(text: string, from: number): boolean {
  if (text.length - from > 5) return false;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Whether `[...]` holds an IPv6 address (hex digits, colons, an optional dotted IPv4 tail). */
function isIpLiteral(text: string, end: number): boolean {
  if (end < 3) return false;
  let colons = 0;
  for (let i = 1; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 58 /* : */) colons++;
    else if (c !== 46 /* . */ && !isHex(c)) return false;
  }
  return colons >= 2;
}

/**
 * Whether a Host value (or the authority of an absolute-form target) is
 * `reg-name | IPv4 | [IPv6]` with an optional `:port` of digits: no userinfo,
 * no spaces, nothing a later parser could read differently.
 */
export function validAuthority(host: string): boolean {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close < 0 || !isIpLiteral(host, close)) return false;
    if (close === host.length - 1) return true;
    return host.charCodeAt(close + 1) === 58 /* : */ && isDigits(host, close + 2);
  }
  const colon = host.indexOf(':');
  if (colon >= 0) {
    if (!isDigits(host, colon + 1)) return false;
    end = colon;
  }
  for (let i = 0; i < end; i++) {
    const c = host.charCodeAt(i);
    if (c === 37 /* % */) {
      if (!isHex(host.charCodeAt(i + 1)) || !isHex(host.charCodeAt(i + 2)) || i + 2 >= end) return false;
      i += 2;
    } else if (c >= 128 || AUTHORITY[c] === 0) {
      return false;
    }
  }
  return true;
}

/** An absolute-form target split into its authority and origin-form rest; `null` when malformed. */
export function splitAbsoluteForm(url: string): { host: string; path: string } | null {
  let start: number;
  if (/^http:\/\//i.test(url)) start = 7;
  else if (/^https:\/\//i.test(url)) start = 8;
  else return null;
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
    end++;
  }
  const host = url.slice(start, end);
  if (host === '' || !validAuthority(host)) return null;
  const rest = url.slice(end);
  const hash = rest.indexOf('#');
  const path = hash < 0 ? rest : rest.slice(0, hash);
  return { host, path: path === '' ? '/' : path.charCodeAt(0) === 63 ? `/${path}` : path };
}

/** Whether a path needs the slow path of `normalisePath` at all. */
export function needsNormalising(target: string): boolean {
  return target.indexOf('%') >= 0 || target.indexOf('/.') >= 0;
}

const UPPER_HEX = '0123456789ABCDEF';

function hexValue(code: number): number {
  if (code <= 57) return code - 48;
  return (code | 32) - 87;
}

function isUnreserved(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57) || code === 45 || code === 46 || code === 95 || code === 126;
}

/**
 * Percent-encodings of a path: unreserved characters decoded, the rest
 * uppercased; `%2F`/`%5C` as `escapedSlashes` says. `null` for `%00`, a
 * malformed escape, or an escaped slash in `reject` mode.
 */
function decodePercent(path: string, escapedSlashes: EscapedSlashes): string | null {
  let out = '';
  let from = 0;
  for (let i = path.indexOf('%'); i >= 0; i = path.indexOf('%', i + 1)) {
    const hi = path.charCodeAt(i + 1);
    const lo = path.charCodeAt(i + 2);
    if (!isHex(hi) || !isHex(lo)) return null;
    const value = hexValue(hi) * 16 + hexValue(lo);
    if (value === 0) return null;
    out += path.slice(from, i);
    if (isUnreserved(value)) {
      out += String.fromCharCode(value);
    } else if ((value === 0x2f || value === 0x5c) && escapedSlashes !== 'keep') {
      if (escapedSlashes === 'reject') return null;
      out += String.fromCharCode(value);
    } else {
      out += `%${UPPER_HEX[value >> 4] as string}${UPPER_HEX[value & 15] as string}`;
    }
    from = i + 3;
    i += 2;
  }
  return from === 0 ? path : out + path.slice(from);
}

/** RFC 3986 5.2.4 remove_dot_segments, for a path that starts with `/`. */
export function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  // segments[0] is the empty string before the leading slash.
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i] as string;
    const last = i === segments.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..' && out.length > 0) out.pop();
      // A dot-segment at the end leaves the path ending in a slash: `/a/b/..` is `/a/`.
      if (last) out.push('');
      continue;
    }
    out.push(segment);
  }
  return `/${out.join('/')}`;
}

/**
 * Normalises an origin-form target (path and query) before matching: percent
 * encodings as `decodePercent` says, then dot-segments removed; the query is
 * left as it came. `null` when the path must be refused (400).
 */
export function normalisePath(target: string, escapedSlashes: EscapedSlashes): string | null {
  const query = target.indexOf('?');
  const path = query < 0 ? target : target.slice(0, query);
  const decoded = path.indexOf('%') < 0 ? path : decodePercent(path, escapedSlashes);
  if (decoded === null) return null;
  const normal = decoded.indexOf('/.') < 0 ? decoded : removeDotSegments(decoded);
  if (normal === path) return target;
  return query < 0 ? normal : normal + target.slice(query);
}
