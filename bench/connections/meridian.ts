/**
 * Meridian as bench/connections runs it: `meridian start` on a one-route
 * table with `proxy.workers: N` and a keep-alive timeout long enough that no
 * idle connection is closed while it is measured; and what its processes hold.
 */
import { get } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeMeridianHome } from '../lib/routes.js';
import { freePort, openFds, processCpuMs, processRss, startProcess, treePids, waitForPort, waitReady, type BenchProcess } from '../lib/process.js';

const meridianCli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/**
 * Idle client connections stay open this long (`proxy.keepAliveTimeout`,
 * default 5s): longer than opening, settling and the request phase together.
 */
export const KEEP_ALIVE_TIMEOUT = '10m';

/** A running Meridian node and its ports. */
export interface BenchMeridian {
  readonly process: BenchProcess;
  readonly port: number;
  readonly adminPort: number;
}

/** Starts Meridian with `workers` data-plane processes in front of `upstream` (`host:port`); resolves once it is ready. */
export async function startMeridian(dir: string, workers: number, upstream: string): Promise<BenchMeridian> {
  const port = await freePort();
  const adminPort = await freePort();
  const config = writeMeridianHome(join(dir, `meridian-${workers}w`), upstream, { listen: `127.0.0.1:${port}`, workers, keepAliveTimeout: KEEP_ALIVE_TIMEOUT }, { listen: `127.0.0.1:${adminPort}` });
  const proc = startProcess(`meridian-${workers}w`, process.execPath, [meridianCli, 'start', '--config', config, '--log-level', 'warn']);
  try {
    await waitForPort(proc, port);
    await waitReady(proc, adminPort);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { process: proc, port, adminPort };
}

/** One of Meridian's processes at a moment: the primary (or the only process) first, then its workers. */
export interface ProcessReading {
  readonly pid: number;
  readonly rss: number;
  readonly fds: number;
  /** CPU time used so far (user + system). */
  readonly cpuMs: number;
}

/** RSS, open fds and CPU time of every process of the node. */
export function readProcesses(meridian: BenchMeridian): ProcessReading[] {
  const pid = meridian.process.child.pid;
  if (pid === undefined) return [];
  return treePids(pid).map((p) => ({ pid: p, rss: processRss(p), fds: openFds(p), cpuMs: processCpuMs(p) }));
}

/** Total RSS of the readings. */
export function totalRss(readings: readonly ProcessReading[]): number {
  return readings.reduce((sum, r) => sum + r.rss, 0);
}

/** CPU ms each process used between two readings, as `pid N: ms` (a process missing from either is left out). */
export function cpuBetween(before: readonly ProcessReading[], after: readonly ProcessReading[]): string {
  return after
    .flatMap((a) => {
      const b = before.find((r) => r.pid === a.pid);
      return b === undefined ? [] : [`pid ${a.pid} ${Math.round(a.cpuMs - b.cpuMs)} ms`];
    })
    .join(', ');
}

/** What the bench reads from Meridian's admin `/metrics` (summed over its processes). */
export interface MeridianCounts {
  /** `meridian_open_connections`: the client connections Meridian counts. */
  readonly openConnections: number;
  /** `nodejs_heap_size_used_bytes`: V8 heap in use. */
  readonly heapUsed: number;
}

function metric(text: string, name: string): number {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  if (match === null) throw new Error(`${name} missing from /metrics`);
  return Number(match[1]);
}

/** Reads the connection count and heap in use from the admin `/metrics`. */
export function readCounts(meridian: BenchMeridian): Promise<MeridianCounts> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port: meridian.adminPort, path: '/metrics', timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        try {
          resolve({ openConnections: metric(text, 'meridian_open_connections'), heapUsed: metric(text, 'nodejs_heap_size_used_bytes') });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('GET /metrics timed out')));
    req.on('error', reject);
  });
}
