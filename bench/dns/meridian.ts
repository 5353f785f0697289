/**
 * Meridian as bench/dns runs it: `meridian start` with `proxy.workers` N, a
 * `dns` section for zone example.com, `geo.networks` mapping one /16 to each
 * region, and a routing-table file with one service `api` (steering nearest)
 * whose single version has one endpoint per region. The endpoints are node:http servers in
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
import { startProcess, treePids, type BenchProcess } from '../lib/process.js';
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

function configDocument(home: string, dnsPort: number, workers: number): unknown {
  return {
    node: { name: 'bench-dns' },
    proxy: { listen: '127.0.0.1:0', workers },
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

/** What Meridian's `meridian started` log line says; the fields a single process does not log are null. */
interface StartedLine {
  readonly adminPort: number | null;
  /** Workers listening (a primary only). */
  readonly workers: number | null;
  /** `reuseport` or `shared` (a primary only). */
  readonly sharing: string | null;
}

/** The `meridian started` log line of the output; null until it is logged. */
function startedLine(output: string): StartedLine | null {
  for (const line of output.split('\n')) {
    if (!line.includes('"meridian started"')) continue;
    try {
      const entry = JSON.parse(line) as { admin?: { port?: unknown }; workers?: unknown; sharing?: unknown };
      return {
        adminPort: typeof entry.admin?.port === 'number' ? entry.admin.port : null,
        workers: typeof entry.workers === 'number' ? entry.workers : null,
        sharing: typeof entry.sharing === 'string' ? entry.sharing : null,
      };
    } catch {
      return null;
    }
  }
  return null;
}

/** The candidate name of Meridian with `workers` workers. */
export function meridianName(workers: number): string {
  return `meridian-${workers}w`;
}

/**
 * Once `meridian started` is logged: how the candidate runs, for the notes.
 * With workers, every one must be listening and a child of the started process,
 * or its CPU time and memory would be missing from the candidate's figures.
 */
async function description(proc: BenchProcess, workers: number, deadline: number): Promise<string> {
  let started = startedLine(proc.output());
  while (started === null) {
    const gone = exited(proc);
    if (gone !== null) throw new Error(gone);
    if (performance.now() > deadline) throw new Error('meridian answered but logged no "meridian started" line');
    await sleep(50);
    started = startedLine(proc.output());
  }
  if (workers === 1) return 'one process';
  const pid = proc.child.pid;
  const processes = pid === undefined ? 0 : treePids(pid).length;
  if (started.workers !== workers || processes !== workers + 1) {
    throw new Error(`meridian started with ${started.workers ?? 'no'} worker(s) listening and ${processes} process(es); expected ${workers} and ${workers + 1}`);
  }
  const sharing = started.sharing === 'reuseport' ? 'a UDP socket per worker (SO_REUSEPORT)' : 'one UDP socket shared through the primary';
  return `${processes} processes: a primary and ${workers} workers, ${sharing}`;
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
  return exitCode === null && signalCode === null ? null : `${proc.name} exited with ${exitCode ?? signalCode}:\n${tail(proc.output())}`;
}

/**
 * Starts the health endpoints and Meridian with `workers` workers on a free DNS
 * port; resolves once Meridian answers `api.example.com A` with an address (its
 * endpoints healthy) and has logged that it started (every worker listening).
 * Throws, with Meridian's output and admin state, when it does not within `waitMs`.
 */
export async function startMeridian(dir: string, waitMs: number, workers: number): Promise<DnsServer> {
  const name = meridianName(workers);
  const home = join(dir, name);
  mkdirSync(home, { recursive: true });
  const endpoints = await Promise.all(REGIONS.map(() => startHealthyEndpoint()));
  const closeEndpoints = (): Promise<void> =>
    Promise.all(endpoints.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => undefined);
  const port = await freeDnsPort();
  const addresses = endpoints.map((s) => `127.0.0.1:${(s.address() as AddressInfo).port}`);
  writeFileSync(join(home, 'routes.yaml'), stringify(routesDocument(addresses)));
  writeFileSync(join(home, 'meridian.yaml'), stringify(configDocument(home, port, workers)));
  const proc = startProcess(name, node, [meridianCli, 'start', '--config', join(home, 'meridian.yaml'), '--log-level', 'info']);
  const stopAll = async (): Promise<void> => {
    await proc.stop();
    await closeEndpoints();
  };
  const started = performance.now();
  let described: string;
  try {
    const answer = await waitForAnswer(
      port,
      { name: ROUTE_HOSTS[0], type: 'A' },
      (a) => a.rcode === 'NOERROR' && a.answers.some((r) => r.startsWith('A ')),
      () => exited(proc),
      waitMs,
    );
    process.stderr.write(`${name}: DNS answers after ${Math.round(performance.now() - started)} ms: ${formatAnswer(answer)}\n`);
    described = await description(proc, workers, started + waitMs);
  } catch (err) {
    // Let a slow start log its last lines before reporting.
    await sleep(100);
    const running = exited(proc) === null;
    const admin = running ? startedLine(proc.output())?.adminPort ?? null : null;
    const state = admin === null ? '' : `\nadmin state: ${await adminState(admin)}`;
    const output = running ? `\n${tail(proc.output())}` : '';
    await stopAll();
    throw new Error(`${(err as Error).message}${output}${state}`);
  }
  return {
    name,
    description: described,
    judged: true,
    port,
    process: proc,
    stop: stopAll,
    kill() {
      // The primary alone would leave its workers serving until they notice its IPC channel closed.
      for (const pid of proc.child.pid === undefined ? [] : treePids(proc.child.pid).reverse()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      for (const s of endpoints) s.closeAllConnections();
    },
  };
}
