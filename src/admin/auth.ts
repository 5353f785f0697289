import { createHash, timingSafeEqual } from 'node:crypto';

/** `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 9110 11.1), spaces around the parts tolerated. */
const BEARER = /^[ \t]*bearer[ \t]+(.*?)[ \t]*$/i;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * The admin bearer token. Both sides are hashed before the constant-time
 * comparison, so neither a wrong token nor its length shows in the timing.
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
    const match = header === undefined ? null : BEARER.exec(header);
    // A missing or malformed header is still compared, so that it takes as long as a wrong token.
    const given = digest(match?.[1] ?? '');
    return timingSafeEqual(given, this.#digest);
  }
}
