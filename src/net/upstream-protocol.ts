/**
 * How Meridian speaks HTTP to an upstream: HTTP/1.1 (`http1`, the default),
 * HTTP/2 over TLS chosen by ALPN (`h2`), or HTTP/2 over plaintext with prior
 * knowledge (`h2c`).
 */
export type UpstreamProtocol = 'http1' | 'h2' | 'h2c';

/** The HTTP/2 protocols: the only ones a target names (a target without one speaks HTTP/1.1). */
export type Http2Protocol = Exclude<UpstreamProtocol, 'http1'>;

/**
 * Streams one HTTP/2 connection to an upstream carries at once (what undici
 * assumes of a server until its SETTINGS say otherwise, and Node's default).
 */
export const H2_STREAMS_PER_CONNECTION = 100;

/** A connection to an `h2` upstream whose TLS handshake settled on something other than HTTP/2. */
export function alpnRefusedError(negotiated: string | false | null | undefined): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`the upstream did not choose h2 by ALPN (it chose ${negotiated === false || negotiated == null ? 'no protocol' : negotiated}): protocol h2 needs an upstream that speaks HTTP/2 over TLS`);
  err.code = 'ERR_MERIDIAN_ALPN_NOT_H2';
  return err;
}
