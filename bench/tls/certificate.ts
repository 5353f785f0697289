/**
 * The one certificate every bench/tls candidate serves, so that the handshake
 * costs the same key operations whoever terminates it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** PEM files of a self-signed P-256 certificate for `localhost`. */
export interface BenchCertificate {
  readonly cert: string;
  readonly key: string;
  /** Certificate then key in one file: the form HAProxy's `crt` reads. */
  readonly combined: string;
}

/** Makes a P-256 self-signed pair for `localhost` in `dir` with the openssl CLI (valid 2 days). */
export function makeCertificate(dir: string): BenchCertificate {
  const cert = join(dir, 'localhost.pem');
  const key = join(dir, 'localhost.key');
  const combined = join(dir, 'localhost-combined.pem');
  // openssl writes its progress to stderr; kept only for the error report.
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 },
  );
  writeFileSync(combined, `${readFileSync(cert, 'utf8')}${readFileSync(key, 'utf8')}`);
  return { cert, key, combined };
}
