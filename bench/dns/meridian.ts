/**
 * Meridian as bench/dns runs it: `meridian start` with a `dns` section for
 * zone example.com, `geo.networks` mapping one /16 to each region, and a
 * routing-table file with one service `api` (steering nearest) whose single
 * version has one endpoint per region. The endpoints are node:http servers in
 * the bench process that answer 200 to the health checks, so both regions are
 * healthy and Meridian answers A/AAAA with their edge addresses.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { startProcess, type BenchProcess } from '../lib/process.js';
import { formatAnswer, waitForAnswer } from './probe.js';
import { freeDnsPort, tail, type DnsServer } from './server.js';
import { NAMESERVER, REGIONS, ROUTE_HOSTS, TTL_SECONDS, ZONE } from './zone.js';

const node = process.execPath;
const meridianCli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/**
 * Health checks of the `api` endpoints: healthy after the first check (made
 * at once), then rarely, so that checking costs nothing during the rounds.
 */
export const HEALTH_CHECK = Object.freeze({ path: '/healthz', interval: '10s', timeout: '2s', healthyThreshold: 1 });

/** A node:http server on a free loopback port answering 200 to everything. */
function startHealthyEndpoint(): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
    res.end('ok');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function routesDocument(endpoints: readonly string[]): unknown {
  const regions: Record<string, unknown> = {};
  const byRegion: Record<string, string[]> = {};
  REGIONS.forEach((r, i) => {
    regions[r.name] = { location: r.location, edge: { ipv4: [r.ipv4], ipv6: [r.ipv6] } };
    byRegion[r.name] = [endpoints[i] as string];
  });
  return {
    regions,
    services: { api: { steering: 'nearest', healthCheck: HEALTH_CHECK, versions: { stable: { endpoints: byRegion } } } },
    routes: { api: { hosts: [...ROUTE_HOSTS], service: 'api' } },
  };
}

function configDocument(home: string, dnsPort: number): unknown {
  return {
    node: { name: 'bench-dns' },
    proxy: { listen: '127.0.0.1:0' },
    admin: { listen: '127.0.0.1:0' },
    store: { file: join(home, 'routes.yaml'), snapshot: join(home, 'last-good.json') },
    dns: {
      listen: `127.0.0.1:${dnsPort}`,
      ttl: `${TTL_SECONDS}s`,
      zones: [{ name: ZONE, nameservers: [NAMESERVER] }],
    },
    geo: { networks: REGIONS.map((r) => ({ cidr: r.network, region: r.name })) },
  };
}

/** The admin port from Meridian's `meridian started` log line; null until it is logged. */
function adminPort(output: string): number | null {
  for (const line of output.split('\n')) {
    if (!line.includes('"meridian started"')) continue;
    try {
      const entry = JSON.parse(line) as { admin?: { port?: unknown } };
      return typeof entry.admin?.port === 'number' ? entry.admin.port : null;
    } catch {
      return null;
    }
  }
  return null;
}

/** GET /api/v1/state on the admin port, as text for an error report; a note when it does not answer. */
function adminState(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path: '/api/v1/state', timeout: 1_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body.slice(0, 4_000)));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(`(admin state unavailable: ${err.message})`));
  });
}

function exited(proc: BenchProcess): string | null {
  const { exitCode, signalCode } = proc.child;
  return exitCode === null && signalCode === null ? null : `meridian exited with ${exitCode ?? signalCode}:\n${tail(proc.output())}`;
}

/**
 * Starts the health endpoints and Meridian on a free DNS port; resolves once
 * Meridian answers `api.example.com A` with an address (its endpoints healthy).
 * Throws, with Meridian's output and admin state, when it does not within `waitMs`.
 */
export async function startMeridian(dir: string, waitMs: number): Promise<DnsServer> {
  const home = join(dir, 'meridian');
  mkdirSync(home, { recursive: true });
  const endpoints = await Promise.all(REGIONS.map(() => startHealthyEndpoint()));
  const closeEndpoints = (): Promise<void> =>
    Promise.all(endpoints.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => undefined);
  const port = await freeDnsPort();
  const addresses = endpoints.map((s) => `127.0.0.1:${(s.address() as AddressInfo).port}`);
  writeFileSync(join(home, 'routes.yaml'), stringify(routesDocument(addresses)));
  writeFileSync(join(home, 'meridian.yaml'), stringify(configDocument(home, port)));
  const proc = startProcess('meridian', node, [meridianCli, 'start', '--config', join(home, 'meridian.yaml'), '--log-level', 'info']);
  const server: DnsServer = {
    name: 'meridian',
    port,
    process: proc,
    async stop() {
      await proc.stop();
      await closeEndpoints();
    },
    kill() {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
      for (const s of endpoints) s.closeAllConnections();
    },
  };
  const started = performance.now();
  try {
    const answer = await waitForAnswer(
      port,
      { name: ROUTE_HOSTS[0], type: 'A' },
      (a) => a.rcode === 'NOERROR' && a.answers.some((r) => r.startsWith('A ')),
      () => exited(proc),
      waitMs,
    );
    process.stderr.write(`meridian: DNS answers after ${Math.round(performance.now() - started)} ms: ${formatAnswer(answer)}\n`);
  } catch (err) {
    // Let a slow start log its last lines before reporting.
    await sleep(100);
    const running = exited(proc) === null;
    const admin = running ? adminPort(proc.output()) : null;
    const state = admin === null ? '' : `\nadmin state: ${await adminState(admin)}`;
    const output = running ? `\n${tail(proc.output())}` : '';
    await server.stop();
    throw new Error(`${(err as Error).message}${output}${state}`);
  }
  return server;
}
