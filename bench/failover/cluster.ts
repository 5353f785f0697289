/**
 * The processes bench/failover runs: five upstream processes in three regions
 * and one Meridian in front of them, configured from files in a temp dir.
 * Upstreams are separate processes so that they can be killed and frozen.
 */
import { chmodSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort, startProcess, waitForPort, waitReady, type BenchProcess } from '../lib/process.js';

const node = process.execPath;
const upstreamScript = fileURLToPath(new URL('../http/upstream.js', import.meta.url));
const meridianCli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** Where each region sits; the proxy itself is in London, so eu-west is its nearest. */
const REGIONS = {
  'eu-west': { location: { lat: 53.35, lon: -6.26 } },
  'us-east': { location: { lat: 38.9, lon: -77.04 } },
  'ap-south': { location: { lat: 19.08, lon: 72.88 } },
} as const;

/** Name of one of the bench regions. */
export type RegionName = keyof typeof REGIONS;

/** Settings of the `web` service: health checks every second so that a run stays short. */
export const SERVICE_SETTINGS = Object.freeze({
  steering: 'nearest',
  healthCheck: { interval: '1s', timeout: '500ms' },
  retries: { attempts: 2, perTryTimeout: '500ms' },
  timeouts: { connect: '250ms', request: '10s' },
});

/** The upstreams and their regions, in the order the phases refer to them. */
const UPSTREAMS: readonly (readonly [string, RegionName])[] = [
  ['e1', 'eu-west'],
  ['e2', 'eu-west'],
  ['u1', 'us-east'],
  ['u2', 'us-east'],
  ['a1', 'ap-south'],
];

/** One upstream: a name, a region, a port it keeps across restarts, and its current process. */
export interface Upstream {
  readonly name: string;
  readonly region: RegionName;
  readonly port: number;
  /** `host:port`, as written in the routing table and echoed in `x-meridian-endpoint`. */
  readonly address: string;
  process: BenchProcess;
  drain: boolean;
}

/** The whole set-up of one run; `stop()` ends every process it started. */
export interface Cluster {
  readonly dir: string;
  readonly proxyPort: number;
  readonly adminPort: number;
  readonly upstreams: readonly Upstream[];
  readonly meridian: BenchProcess;
  /** The upstream named `name`; throws for an unknown name. */
  upstream(name: string): Upstream;
  /** Rewrites the routing-table file from the current `drain` flags (by rename, as editors save). */
  writeRoutes(): void;
  /** Continues frozen upstreams, stops Meridian, then every upstream, and removes the temp dir. */
  stop(): Promise<void>;
  /** Last resort on a signal: SIGCONT and SIGKILL every process at once. */
  killAll(): void;
}

function spawnUpstream(name: string, port: number): BenchProcess {
  return startProcess(name, node, [upstreamScript, '--port', String(port), '--size', '256']);
}

function routesDocument(upstreams: readonly Upstream[]): unknown {
  const endpoints: Record<string, (string | { address: string; drain: boolean })[]> = {};
  for (const region of Object.keys(REGIONS)) endpoints[region] = [];
  for (const u of upstreams) endpoints[u.region]?.push(u.drain ? { address: u.address, drain: true } : u.address);
  return {
    regions: REGIONS,
    services: { web: { ...SERVICE_SETTINGS, versions: { stable: { endpoints } } } },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  };
}

/** Starts the upstreams, writes the configuration and starts Meridian; on failure stops what it started. */
export async function startCluster(): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-failover-'));
  chmodSync(dir, 0o755);
  const upstreams: Upstream[] = [];
  let meridian: BenchProcess | null = null;
  const routesFile = join(dir, 'routes.yaml');
  const writeRoutes = (): void => {
    writeFileSync(`${routesFile}.next`, stringify(routesDocument(upstreams)));
    renameSync(`${routesFile}.next`, routesFile);
  };
  const killAll = (): void => {
    for (const p of [meridian, ...upstreams.map((u) => u.process)]) {
      if (p === null || p.child.exitCode !== null || p.child.signalCode !== null) continue;
      p.child.kill('SIGCONT');
      p.child.kill('SIGKILL');
    }
  };
  const stop = async (): Promise<void> => {
    for (const u of upstreams) u.process.child.kill('SIGCONT');
    await meridian?.stop();
    await Promise.all(upstreams.map((u) => u.process.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const [name, region] of UPSTREAMS) {
      const port = await freePort();
      upstreams.push({ name, region, port, address: `127.0.0.1:${port}`, process: spawnUpstream(name, port), drain: false });
    }
    for (const u of upstreams) await waitForPort(u.process, u.port);
    writeRoutes();
    const proxyPort = await freePort();
    const adminPort = await freePort();
    const configFile = join(dir, 'meridian.yaml');
    writeFileSync(
      configFile,
      stringify({
        node: { name: 'bench', region: 'eu-west', location: { lat: 51.5, lon: -0.1 } },
        proxy: { listen: `127.0.0.1:${proxyPort}`, debugHeaders: true },
        admin: { listen: `127.0.0.1:${adminPort}` },
        store: { file: routesFile, snapshot: join(dir, 'last-good.json') },
      }),
    );
    meridian = startProcess('meridian', node, [meridianCli, 'start', '--config', configFile, '--log-level', 'warn']);
    await waitForPort(meridian, proxyPort);
    await waitReady(meridian, adminPort);
    const started = meridian;
    return {
      dir,
      proxyPort,
      adminPort,
      upstreams,
      meridian: started,
      upstream(name) {
        const found = upstreams.find((u) => u.name === name);
        if (found === undefined) throw new Error(`no upstream ${name}`);
        return found;
      },
      writeRoutes,
      stop,
      killAll,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** SIGKILLs an upstream and resolves once it is gone. */
export async function killUpstream(u: Upstream): Promise<void> {
  const child = u.process.child;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGCONT');
  child.kill('SIGKILL');
  await exited;
}

/** Starts a new process for a dead upstream on the same port; resolves once it accepts connections. */
export async function restartUpstream(u: Upstream): Promise<void> {
  await killUpstream(u);
  u.process = spawnUpstream(u.name, u.port);
  await waitForPort(u.process, u.port);
}

/** SIGSTOPs an upstream: its sockets still accept connections, but nothing answers. */
export function freezeUpstream(u: Upstream): void {
  u.process.child.kill('SIGSTOP');
}

/** SIGCONTs a frozen upstream. */
export function thawUpstream(u: Upstream): void {
  u.process.child.kill('SIGCONT');
}
