import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { LoadedCertificate } from './certificates.js';
import { selfSignedPem, type PemPair } from './self-signed.js';

export type { PemPair } from './self-signed.js';

/**
 * A self-signed certificate for `meridian.invalid`, made in memory: what the
 * TLS listener presents while no certificate is configured and ACME has not
 * issued one yet. Clients refuse it (it names no real host and nobody signed
 * it), so a handshake fails cleanly instead of the listener having nothing.
 */
export function makePlaceholderPem(): Promise<PemPair> {
  return selfSignedPem({ dnsNames: ['meridian.invalid'], days: 365 });
}

/** The placeholder as a loaded certificate: it answers no name, only clients nothing else matches. */
export function placeholderCertificate(pem: PemPair, minVersion: 'TLSv1.2' | 'TLSv1.3'): LoadedCertificate {
  const parsed = new X509Certificate(pem.cert);
  return {
    files: { cert: 'placeholder', key: 'placeholder' },
    names: [],
    subject: parsed.subject,
    issuer: parsed.issuer,
    notBefore: new Date(parsed.validFrom),
    notAfter: new Date(parsed.validTo),
    fingerprint256: parsed.fingerprint256,
    context: createSecureContext({ ...pem, minVersion }),
    pem,
    loadedAt: new Date(),
    version: '',
  };
}
