/**
 * What bench/http compares: each candidate is a way to start a process that
 * listens on a port and forwards to the bench upstream.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeMeridianHome } from '../lib/routes.js';
import { findProgram, startProcess, type BenchProcess } from '../lib/process.js';

/** A proxy (or the upstream itself) under test. */
export interface Candidate {
  readonly name: string;
  /** Starts it listening on `port`, forwarding to `upstream` (`host:port`); null for "direct". */
  readonly start: ((port: number, upstream: string, dir: string) => BenchProcess) | null;
}

const node = process.execPath;
const benchDir = new URL('..', import.meta.url).pathname;
const meridianCli = new URL('../../dist/cli.js', import.meta.url).pathname;

function nodeCandidate(name: string, script: string): Candidate {
  return {
    name,
    start: (port, upstream) => startProcess(name, node, [join(benchDir, 'http', script), '--port', String(port), '--upstream', upstream]),
  };
}

/** Meridian as users run it: the CLI, a routing-table file, metrics on the admin port; `workers` data-plane processes. */
function meridian(workers: number): Candidate {
  return {
    name: `meridian-${workers}w`,
    start(port, upstream, dir) {
      const config = writeMeridianHome(join(dir, `meridian-${workers}w`), upstream, { listen: `127.0.0.1:${port}`, workers });
      return startProcess(`meridian-${workers}w`, node, [meridianCli, 'start', '--config', config, '--log-level', 'warn']);
    },
  };
}

/** nginx with `workers` worker processes and upstream keep-alive: the usual hand-tuned edge config. */
function nginxProxy(binary: string, workers: number): Candidate {
  return {
    name: `nginx-${workers}w`,
    start(port, upstream, dir) {
      const prefix = join(dir, `nginx-proxy-${workers}w`);
      mkdirSync(join(prefix, 'logs'), { recursive: true });
      const conf = join(prefix, 'nginx.conf');
      writeFileSync(
        conf,
        `worker_processes ${workers};
daemon off;
master_process on;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body; proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fcgi; uwsgi_temp_path ${prefix}/uwsgi; scgi_temp_path ${prefix}/scgi;
  upstream backend { server ${upstream}; keepalive 128; keepalive_requests 1000000; }
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`,
      );
      return startProcess(`nginx-${workers}w`, binary, ['-p', prefix, '-c', conf]);
    },
  };
}

/** HAProxy with `threads` threads and connection reuse. */
function haproxy(binary: string, threads: number): Candidate {
  return {
    name: `haproxy-${threads}t`,
    start(port, upstream, dir) {
      const conf = join(dir, `haproxy-${threads}t.cfg`);
      writeFileSync(
        conf,
        `global
  nbthread ${threads}
  maxconn 5000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server s1 ${upstream}
`,
      );
      return startProcess(`haproxy-${threads}t`, binary, ['-db', '-f', conf]);
    },
  };
}

/** Every candidate this machine can run, in table order; the multi-process ones once per count in `workers`. */
export function candidates(workers: readonly number[]): Candidate[] {
  const list: Candidate[] = [
    { name: 'direct', start: null },
    nodeCandidate('bare-undici', 'bare-proxy.js'),
    nodeCandidate('node-http-proxy', 'http-proxy-baseline.js'),
    ...workers.map((n) => meridian(n)),
  ];
  const nginx = findProgram('nginx');
  if (nginx !== null) list.push(...workers.map((n) => nginxProxy(nginx, n)));
  const ha = findProgram('haproxy');
  if (ha !== null) list.push(...workers.map((n) => haproxy(ha, n)));
  return list;
}

/** The upstream every candidate forwards to: nginx serving a fixed body when installed, else a Node server. */
export function startUpstream(port: number, size: number, dir: string): BenchProcess {
  const nginx = findProgram('nginx');
  if (nginx === null) return startProcess('upstream (node)', node, [join(benchDir, 'http', 'upstream.js'), '--port', String(port), '--size', String(size)]);
  const prefix = join(dir, 'nginx-upstream');
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  writeFileSync(join(prefix, 'body'), 'm'.repeat(size));
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path ${prefix}/body-temp;
  server {
    listen 127.0.0.1:${port};
    root ${prefix};
    location / { default_type text/plain; try_files /body =404; }
  }
}
`,
  );
  return startProcess('upstream (nginx)', nginx, ['-p', prefix, '-c', conf]);
}
