import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';

/** A certificate's files as configured. */
export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

/** A certificate as loaded: what it is good for and the context that serves it. */
export interface LoadedCertificate {
  readonly files: CertificateFiles;
  /** DNS names it is valid for (subjectAltName, else the subject's CN), lowercase; may start with `*.`. */
  readonly names: readonly string[];
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly fingerprint256: string;
  readonly context: SecureContext;
  /** The PEM text, for the listener's own context (served to clients that send no name). */
  readonly pem: { readonly cert: string; readonly key: string };
  readonly loadedAt: Date;
  /** The files' versions (size and times) when they were read. */
  readonly version: string;
}

/** Why a certificate's files could not be used, in words an operator can act on. */
export class CertificateError extends Error {}

/** The files' identity and version as stat shows them; a missing file is a version too. */
export function filesVersion(files: CertificateFiles): string {
  const one = (path: string): string => {
    try {
      const s = statSync(path);
      return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
    } catch {
      return 'missing';
    }
  };
  return `${one(files.cert)}|${one(files.key)}`;
}

/** DNS names of a certificate: its subjectAltName DNS entries, else its subject's CN. */
function namesOf(x509: X509Certificate): string[] {
  const san = x509.subjectAltName;
  if (san !== undefined) {
    const names = san
      .split(', ')
      .filter((entry) => entry.startsWith('DNS:'))
      .map((entry) => entry.slice(4).toLowerCase());
    if (names.length > 0) return names;
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1];
  return cn === undefined ? [] : [cn.toLowerCase()];
}

function read(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CertificateError(`cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Reads and checks a certificate and its key: both PEM, the key the
 * certificate's, and a TLS context built from them. Throws a
 * CertificateError saying what is wrong.
 */
export function loadCertificate(files: CertificateFiles, minVersion: 'TLSv1.2' | 'TLSv1.3'): LoadedCertificate {
  const version = filesVersion(files);
  return certificateFromPem(files, read(files.cert, 'certificate'), read(files.key, 'private key'), minVersion, version);
}

/**
 * Checks a certificate and key given as PEM text (`files` names where they
 * came from, in messages and the admin state): the key the certificate's, a
 * TLS context built from them. Throws a CertificateError saying what is wrong.
 */
export function certificateFromPem(files: CertificateFiles, certPem: string, keyPem: string, minVersion: 'TLSv1.2' | 'TLSv1.3', version = ''): LoadedCertificate {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch (err) {
    throw new CertificateError(`${files.cert} is not a PEM certificate: ${(err as Error).message}`);
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(keyPem))) throw new CertificateError(`the key ${files.key} does not belong to the certificate ${files.cert}`);
  } catch (err) {
    if (err instanceof CertificateError) throw err;
    throw new CertificateError(`${files.key} is not a PEM private key: ${(err as Error).message}`);
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert: certPem, key: keyPem, minVersion });
  } catch (err) {
    throw new CertificateError(`${files.cert} cannot be served: ${(err as Error).message}`);
  }
  const names = namesOf(x509);
  if (names.length === 0) throw new CertificateError(`${files.cert} names no host (no DNS subjectAltName and no CN)`);
  return {
    files,
    names,
    subject: x509.subject.replace(/\n/g, ', '),
    issuer: x509.issuer.replace(/\n/g, ', '),
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    fingerprint256: x509.fingerprint256,
    context,
    pem: { cert: certPem, key: keyPem },
    loadedAt: new Date(),
    version,
  };
}

/**
 * Which certificate answers which server name: an exact name first, then a
 * wildcard one label deep (`*.example.com` for `a.example.com`, not for
 * `a.b.example.com` nor `example.com`), else the first certificate.
 */
export class CertificateIndex {
  readonly #exact = new Map<string, LoadedCertificate>();
  readonly #wildcard = new Map<string, LoadedCertificate>();
  readonly fallback: LoadedCertificate;

  constructor(certificates: readonly LoadedCertificate[]) {
    const first = certificates[0];
    if (first === undefined) throw new CertificateError('no certificate to serve');
    this.fallback = first;
    // Earlier certificates win a name several claim: the configured order decides.
    for (const cert of certificates) {
      for (const name of cert.names) {
        const table = name.startsWith('*.') ? this.#wildcard : this.#exact;
        const key = name.startsWith('*.') ? name.slice(2) : name;
        if (!table.has(key)) table.set(key, cert);
      }
    }
  }

  /** The certificate for a client's server name (SNI), or the fallback. */
  lookup(servername: string | undefined): LoadedCertificate {
    if (servername === undefined || servername === '') return this.fallback;
    const name = servername.toLowerCase().replace(/\.$/, '');
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return (dot > 0 ? this.#wildcard.get(name.slice(dot + 1)) : undefined) ?? this.fallback;
  }
}
