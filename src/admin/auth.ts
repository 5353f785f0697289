import { createHash, timingSafeEqual } from 'node:crypto';

/** `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 9110 11.1), spaces around the parts tolerated. */
const BEARER = /^[ \t]*bearer[ \t]+(.*?)[ \t]*$/i;
/** `Authorization: Basic <base64 of user:password>` (RFC 7617), what a browser sends after a Basic challenge. */
const BASIC = /^[ \t]*basic[ \t]+([A-Za-z0-9+/=]*)[ \t]*$/i;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The secret an Authorization header offers: the bearer token, or the password of Basic credentials (any user name). */
function offered(header: string | undefined): string {
  if (header === undefined) return '';
  const bearer = BEARER.exec(header);
  if (bearer !== null) return bearer[1] ?? '';
  const basic = BASIC.exec(header);
  if (basic === null) return '';
  const credentials = Buffer.from(basic[1] ?? '', 'base64').toString('utf8');
  const colon = credentials.indexOf(':');
  return colon < 0 ? '' : credentials.slice(colon + 1);
}

/**
 * The admin token. Both sides are hashed before the constant-time comparison,
 * so neither a wrong token nor its length shows in the timing. Browsers cannot
 * send a bearer header when they navigate, so Basic credentials with the token
 * as password (and any user name) are accepted wherever the bearer token is.
 */
export class BearerToken {
  readonly #digest: Buffer | null;

  /** An empty token means the admin API is open (loopback listeners only; static validation enforces it). */
  constructor(token: string) {
    this.#digest = token === '' ? null : digest(token);
  }

  /** Whether an Authorization header value grants access (always, when no token is configured). */
  accepts(header: string | undefined): boolean {
    if (this.#digest === null) return true;
    // A missing or malformed header is still compared, so that it takes as long as a wrong token.
    return timingSafeEqual(digest(offered(header)), this.#digest);
  }
}
