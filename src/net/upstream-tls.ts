import { isIP } from 'node:net';
import { formatHostPort, type HostPort } from './address.js';
import type { Http2Protocol } from './upstream-protocol.js';

/** How Meridian speaks TLS to an upstream endpoint, as validated from the routing table. */
export interface UpstreamTls {
  /** PEM text of the CA certificates trusted instead of Node's default roots; null: the default roots. */
  readonly caPem: string | null;
  /** The file `caPem` was read from, for logs and the admin state. */
  readonly caFile: string | null;
  /** SHA-256 of `caPem` (hex), so identities differ when the trusted CAs do. */
  readonly caDigest: string | null;
  /** The SNI and verification name; null: the endpoint's host when it is a name (no SNI for an IP address). */
  readonly serverName: string | null;
  /** false: every certificate is accepted, unverified. */
  readonly verify: boolean;
}

/** TLS with Node's default roots, the endpoint's own name, and verification: what `https://host:port` alone means. */
export const DEFAULT_UPSTREAM_TLS: UpstreamTls = Object.freeze({ caPem: null, caFile: null, caDigest: null, serverName: null, verify: true });

/** An upstream address and how to speak to it: plaintext when `tls` is absent or null, HTTP/1.1 when `protocol` is absent. */
export interface UpstreamTarget extends HostPort {
  readonly tls?: UpstreamTls | null;
  readonly protocol?: Http2Protocol;
}

/** The name sent as SNI and checked against the certificate; undefined for an IP address without `serverName` (the certificate must then carry the IP). */
export function sniFor(target: UpstreamTarget): string | undefined {
  const configured = target.tls?.serverName ?? null;
  if (configured !== null) return configured;
  return isIP(target.host) === 0 ? target.host.replace(/\.$/, '') : undefined;
}

/** How an endpoint is named to people: `host:port` for plaintext, `https://host:port` for TLS. */
export function endpointKey(target: UpstreamTarget): string {
  const address = formatHostPort(target);
  return target.tls == null ? address : `https://${address}`;
}

/**
 * Everything that changes a connection to a target, as a string: the endpoint
 * key, then the TLS settings that differ from the defaults. Pools and health
 * records are keyed by it, so a plaintext and a TLS endpoint on one address (or
 * two TLS settings) never share a connection or a verdict.
 */
export function connectionIdentity(target: UpstreamTarget): string {
  const tls = target.tls;
  if (tls == null) return target.protocol === undefined ? formatHostPort(target) : `${formatHostPort(target)} ${target.protocol}`;
  let out = endpointKey(target);
  if (target.protocol !== undefined) out += ` ${target.protocol}`;
  if (tls.serverName !== null) out += ` sni=${tls.serverName}`;
  if (tls.caDigest !== null) out += ` ca=${tls.caDigest.slice(0, 16)}`;
  if (!tls.verify) out += ' verify=off';
  return out;
}

/** The node:tls connect options of a TLS target: trusted CAs, SNI, and whether to verify. */
export function tlsConnectOptions(target: UpstreamTarget): { ca?: string; servername?: string; rejectUnauthorized: boolean } {
  const tls = target.tls ?? DEFAULT_UPSTREAM_TLS;
  const servername = sniFor(target);
  return { ...(tls.caPem === null ? {} : { ca: tls.caPem }), ...(servername === undefined ? {} : { servername }), rejectUnauthorized: tls.verify };
}

/**
 * Codes of the certificate checks OpenSSL and Node run during a handshake
 * (X509_V_ERR_* without the prefix, and Node's name check).
 */
const VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'EMAIL_MISMATCH',
  'IP_ADDRESS_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * Whether an error ended a TLS handshake: a certificate that failed
 * verification, or a handshake OpenSSL refused (alerts, a plaintext server,
 * no common protocol). Resets and timeouts are not: they are reported as such.
 */
export function isTlsHandshakeError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return VERIFY_CODES.has(code) || code.startsWith('ERR_SSL_') || code === 'EPROTO';
}

/**
 * A TLS handshake with an upstream failed, so nothing was sent on the
 * connection: `reason` is OpenSSL's or Node's code (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
 * `ERR_TLS_CERT_ALTNAME_INVALID`, `ERR_SSL_WRONG_VERSION_NUMBER`, ...).
 */
export class UpstreamTlsError extends Error {
  readonly code = 'MERIDIAN_TLS_FAILED';
  readonly reason: string;

  constructor(cause: Error) {
    super(cause.message, { cause });
    this.name = 'UpstreamTlsError';
    this.reason = (cause as NodeJS.ErrnoException).code ?? 'unknown';
  }
}
