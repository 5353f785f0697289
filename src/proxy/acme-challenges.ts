import { createSecureContext, type SecureContext } from 'node:tls';

/** Where HTTP-01 answers live (RFC 8555 8.3). */
export const HTTP_CHALLENGE_PATH = '/.well-known/acme-challenge/';
/** The ALPN protocol of TLS-ALPN-01 validation connections (RFC 8737). */
export const ACME_TLS_ALPN = 'acme-tls/1';

/**
 * The ACME challenges this process answers right now: HTTP-01 key
 * authorizations by token, and TLS-ALPN-01 certificates by host name. Filled
 * by the node's ACME orders (directly, or over IPC in a worker) only while an
 * order waits for validation; empty otherwise, so the listeners skip it.
 */
export class AcmeChallenges {
  readonly #http = new Map<string, string>();
  readonly #alpn = new Map<string, SecureContext>();

  /** Answers `/.well-known/acme-challenge/<token>` with `keyAuthorization`, or stops answering it (null). */
  setHttp(token: string, keyAuthorization: string | null): void {
    if (keyAuthorization === null) this.#http.delete(token);
    else this.#http.set(token, keyAuthorization);
  }

  /** Presents `pem` to TLS-ALPN-01 validation connections for `name`, or stops (null). */
  setAlpn(name: string, pem: { readonly cert: string; readonly key: string } | null): void {
    if (pem === null) this.#alpn.delete(name);
    else this.#alpn.set(name, createSecureContext({ cert: pem.cert, key: pem.key }));
  }

  /** Whether any HTTP-01 token is pending (the one check the request path makes in the common case). */
  get httpPending(): boolean {
    return this.#http.size > 0;
  }

  /** The key authorization for a request target, when it asks for a pending HTTP-01 token. */
  httpAnswer(url: string | undefined): string | undefined {
    if (url === undefined || !url.startsWith(HTTP_CHALLENGE_PATH)) return undefined;
    return this.#http.get(url.slice(HTTP_CHALLENGE_PATH.length));
  }

  /** The challenge context for a TLS-ALPN-01 validation connection to `name`, if one is pending. */
  alpnContext(name: string): SecureContext | undefined {
    return this.#alpn.size === 0 ? undefined : this.#alpn.get(name.toLowerCase());
  }
}
