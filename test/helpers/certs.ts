import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A test certificate authority: its PEM certificate and key files. */
export interface TestCa {
  readonly cert: string;
  readonly key: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Makes a private CA in `dir` (P-256, valid 2 days). */
export function makeCa(dir: string, name = 'ca'): TestCa {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', '/CN=Meridian Test CA'], dir);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

/**
 * Makes a certificate for `names` (DNS names, or IP addresses) signed by `ca`,
 * in `dir` as `<file>.pem` and `<file>.key`. `days` may be negative for an expired one.
 */
export function makeCert(dir: string, ca: TestCa, file: string, names: readonly string[], days = 2): { cert: string; key: string } {
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(join(dir, `${file}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${names[0] ?? file}`], dir);
  const validity = days >= 0 ? ['-days', String(days)] : ['-days', '1', '-not_after', '20000101000000Z'];
  openssl(['x509', '-req', '-in', `${file}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', `${file}.pem`, ...validity, '-extfile', `${file}.ext`], dir);
  return { cert: join(dir, `${file}.pem`), key: join(dir, `${file}.key`) };
}
