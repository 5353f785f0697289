/**
 * What bench/tls compares: Meridian and HAProxy, each with one plaintext and
 * one TLS listener (the same certificate), forwarding to the bench upstream.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeMeridianHome } from '../lib/routes.js';
import { findProgram, startProcess, type BenchProcess } from '../lib/process.js';
import type { BenchCertificate } from './certificate.js';

/** Where a candidate listens. */
export interface CandidatePorts {
  readonly plain: number;
  readonly tls: number;
  /** Meridian's admin listener (its metrics are read after the run); unused by HAProxy. */
  readonly admin: number;
}

/** A TLS-terminating proxy under test. */
export interface TlsCandidate {
  readonly name: string;
  /** Starts it on `ports`, forwarding to `upstream` (`host:port`), its files in `dir`. */
  start(ports: CandidatePorts, upstream: string, dir: string, certificate: BenchCertificate): BenchProcess;
}

const node = process.execPath;
const meridianCli = new URL('../../dist/cli.js', import.meta.url).pathname;

/** Meridian as users run it: the CLI, one process (`proxy.workers: 1`), a one-route table, `proxy.tls` beside `proxy.listen`. */
const meridian: TlsCandidate = {
  name: 'meridian',
  start(ports, upstream, dir, certificate) {
    const tls = { listen: `127.0.0.1:${ports.tls}`, certificates: [{ cert: certificate.cert, key: certificate.key }], minVersion: 'TLSv1.2' };
    const config = writeMeridianHome(join(dir, 'meridian'), upstream, { listen: `127.0.0.1:${ports.plain}`, workers: 1, tls }, { listen: `127.0.0.1:${ports.admin}` });
    return startProcess('meridian', node, [meridianCli, 'start', '--config', config, '--log-level', 'warn']);
  },
};

/**
 * HAProxy with one thread and connection reuse, as bench/http runs it, plus a
 * TLS bind offering h2 and http/1.1 and the X-Forwarded-Proto Meridian adds, so
 * that both do the same work per request.
 */
function haproxy(binary: string): TlsCandidate {
  return {
    name: 'haproxy',
    start(ports, upstream, dir, certificate) {
      const conf = join(dir, 'haproxy-tls.cfg');
      writeFileSync(
        conf,
        `global
  nbthread 1
  maxconn 5000
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:${ports.plain}
  bind 127.0.0.1:${ports.tls} ssl crt ${certificate.combined} alpn h2,http/1.1
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  default_backend be
backend be
  server s1 ${upstream}
`,
      );
      return startProcess('haproxy', binary, ['-db', '-f', conf]);
    },
  };
}

/** Meridian, and HAProxy when it is on PATH. */
export function tlsCandidates(): TlsCandidate[] {
  const ha = findProgram('haproxy');
  return ha === null ? [meridian] : [meridian, haproxy(ha)];
}
