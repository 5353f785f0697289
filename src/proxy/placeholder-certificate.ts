import { webcrypto, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import * as x509 from '@peculiar/x509';
import type { LoadedCertificate } from './certificates.js';

/** A certificate and its key as PEM text. */
export interface PemPair {
  readonly cert: string;
  readonly key: string;
}

/**
 * A self-signed certificate for `meridian.invalid`, made in memory: what the
 * TLS listener presents while no certificate is configured and ACME has not
 * issued one yet. Clients refuse it (it names no real host and nobody signed
 * it), so a handshake fails cleanly instead of the listener having nothing.
 */
export async function makePlaceholderPem(): Promise<PemPair> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: now.toString(16),
      name: 'CN=meridian.invalid',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 365 * 24 * 3_600_000),
      keys,
      signingAlgorithm: algorithm,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
    },
    webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1],
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  return { cert: cert.toString('pem'), key };
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
