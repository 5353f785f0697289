import { z } from 'zod';
import type { UpstreamProtocol } from '../net/upstream-protocol.js';
import type { UpstreamTls } from '../net/upstream-tls.js';

/** `protocol` of a version or endpoint: `http1` (also written `h1`), `h2` or `h2c`. */
export const upstreamProtocolSchema = z
  .enum(['http1', 'h1', 'h2', 'h2c'], { error: 'expected http1 (or h1), h2 (HTTP/2 over TLS) or h2c (HTTP/2 over plaintext)' })
  .transform((written): UpstreamProtocol => (written === 'h1' ? 'http1' : written));

/** The protocol an endpoint is spoken to with: its own, else its version's, else HTTP/1.1. */
export function endpointProtocol(endpoint: { readonly protocol?: UpstreamProtocol | undefined }, version: { readonly protocol?: UpstreamProtocol | undefined }): UpstreamProtocol {
  return endpoint.protocol ?? version.protocol ?? 'http1';
}

/** Why a protocol cannot be spoken over an endpoint's transport (h2 needs TLS, h2c plaintext), or null when it can. */
export function protocolProblem(protocol: UpstreamProtocol, tls: UpstreamTls | null): string | null {
  if (protocol === 'h2' && tls === null) return 'protocol h2 is HTTP/2 over TLS: write the endpoint https://host:port or give it a tls block (h2c is HTTP/2 over plaintext)';
  if (protocol === 'h2c' && tls !== null) return 'protocol h2c is HTTP/2 over plaintext, but this endpoint uses TLS: use protocol h2 for HTTP/2 over TLS';
  return null;
}
