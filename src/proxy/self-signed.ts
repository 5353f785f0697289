import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/** A certificate and its key as PEM text. */
export interface PemPair {
  readonly cert: string;
  readonly key: string;
}

/** What a self-signed certificate names, and for how long it is valid. */
export interface SelfSignedSpec {
  readonly dnsNames: readonly string[];
  readonly ips?: readonly string[];
  readonly days: number;
}

/** A self-signed ECDSA P-256 certificate naming `dnsNames` (the first also as CN) and `ips`, made in memory. */
export async function selfSignedPem(spec: SelfSignedSpec): Promise<PemPair> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const now = Date.now();
  const altNames = [...spec.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...(spec.ips ?? []).map((value) => ({ type: 'ip' as const, value }))];
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: now.toString(16),
      name: `CN=${spec.dnsNames[0] ?? 'localhost'}`,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + spec.days * 24 * 3_600_000),
      keys,
      signingAlgorithm: algorithm,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.SubjectAlternativeNameExtension(altNames)],
    },
    webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1],
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  return { cert: cert.toString('pem'), key };
}
