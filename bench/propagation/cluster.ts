/**
 * The processes bench/propagation runs: a real etcd, two upstream processes
 * standing for versions `blue` and `green` of service `web` in region `local`,
 * and one Meridian reading its routing table from that etcd, all on loopback
 * with their files in one temp dir.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import { freePort, startProcess, waitForPort, type BenchProcess } from '../lib/process.js';
import { etcdClient, startEtcd, waitHealthy, type BenchEtcd } from './etcd.js';

const node = process.execPath;
const upstreamScript = fileURLToPath(new URL('../http/upstream.js', import.meta.url));
const meridianCli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** The etcd key prefix Meridian reads. */
const PREFIX = '/meridian/';

/** The key whose split the bench flips. */
export const SERVICE_KEY = `${PREFIX}services/web`;

/** The two versions of service `web`. */
export type Colour = 'blue' | 'green';

/** The colour a change to `colour` leaves behind. */
export function otherColour(colour: Colour): Colour {
  return colour === 'blue' ? 'green' : 'blue';
}

/** `host:port` of each version's one endpoint. */
export type Addresses = Readonly<Record<Colour, string>>;

/** The JSON value of `/meridian/services/web` sending all traffic to `live`. */
export function serviceValue(live: Colour, addresses: Addresses): string {
  return JSON.stringify({
    split: { weights: { blue: live === 'blue' ? 100 : 0, green: live === 'green' ? 100 : 0 } },
    versions: {
      blue: { endpoints: { local: [addresses.blue] } },
      green: { endpoints: { local: [addresses.green] } },
    },
  });
}

/** What Meridian's admin state says about the table in force. */
export interface MeridianState {
  readonly revision: number;
  readonly source: string;
  readonly errors: readonly string[];
}

/** The whole set-up of one run; `stop()` ends every process it started. */
export interface Cluster {
  readonly dir: string;
  readonly proxyPort: number;
  readonly adminPort: number;
  readonly addresses: Addresses;
  readonly etcdUrl: string;
  /** The bench's own etcd client, which writes the changes. */
  readonly client: Etcd3;
  readonly meridian: BenchProcess;
  /** GET /api/v1/state on the admin port. */
  state(): Promise<MeridianState>;
  /** Stops Meridian, then the upstreams and etcd, and removes the temp dir. */
  stop(): Promise<void>;
  /** Last resort on a signal: SIGKILL every process at once and remove the temp dir. */
  killAll(): void;
}

/** GET 127.0.0.1:port/path; resolves with the status, headers and body, or status 0 when nothing answered. */
function httpGet(port: number, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: 1_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', () => resolve({ status: 0, headers: {}, body: '' }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, headers: {}, body: '' }));
  });
}

function parseState(body: string): MeridianState {
  const value: unknown = JSON.parse(body);
  if (typeof value !== 'object' || value === null) throw new Error('admin state is not a JSON object');
  const fields = value as Record<string, unknown>;
  const errors = Array.isArray(fields.errors) ? fields.errors : [];
  return {
    revision: typeof fields.revision === 'number' ? fields.revision : Number.NaN,
    source: typeof fields.source === 'string' ? fields.source : '?',
    errors: errors.map((e: unknown) => {
      if (typeof e !== 'object' || e === null) return String(e);
      const { key, message } = e as Record<string, unknown>;
      return `${String(key)}: ${String(message)}`;
    }),
  };
}

/** Resolves once GET / through Meridian answers 200 from `blue`; throws with Meridian's output otherwise. */
async function waitServing(meridian: BenchProcess, proxyPort: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (meridian.child.exitCode !== null) throw new Error(`meridian exited with ${meridian.child.exitCode}:\n${meridian.output()}`);
    const res = await httpGet(proxyPort, '/');
    if (res.status === 200 && res.headers['x-meridian-version'] === 'blue') return;
    if (res.status !== 0) last = `${res.status}, x-meridian-version ${String(res.headers['x-meridian-version'])}, x-meridian-error ${String(res.headers['x-meridian-error'])}`;
    await sleep(50);
  }
  throw new Error(`meridian did not answer 200 from blue within ${timeoutMs}ms (last: ${last}):\n${meridian.output()}`);
}

/** Starts etcd (`etcdCommand`), both upstreams and Meridian with blue live; `onKillAll` gets the last-resort kill at once. */
export async function startCluster(etcdCommand: string, onKillAll: (killAll: () => void) => void): Promise<Cluster> {
  // The routing table is in etcd before Meridian starts, so its first table already serves blue.
  // On failure everything started so far is stopped; a signal during start-up uses the kill handed over.
  const dir = mkdtempSync(join(tmpdir(), 'meridian-propagation-'));
  let etcd: BenchEtcd | null = null;
  let client: Etcd3 | null = null;
  let meridian: BenchProcess | null = null;
  const upstreams: BenchProcess[] = [];
  const processes = (): BenchProcess[] => [meridian, ...upstreams, etcd?.process ?? null].filter((p): p is BenchProcess => p !== null);
  const killAll = (): void => {
    for (const p of processes()) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  onKillAll(killAll);
  const stop = async (): Promise<void> => {
    await meridian?.stop();
    client?.close();
    await Promise.all([...upstreams.map((u) => u.stop()), etcd?.process.stop()]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    etcd = await startEtcd(etcdCommand, dir);
    await waitHealthy(etcd);
    const ports = { blue: await freePort(), green: await freePort() };
    for (const colour of ['blue', 'green'] as const) {
      upstreams.push(startProcess(colour, node, [upstreamScript, '--port', String(ports[colour]), '--size', '64']));
    }
    await Promise.all(upstreams.map((u, i) => waitForPort(u, i === 0 ? ports.blue : ports.green)));
    const addresses: Addresses = { blue: `127.0.0.1:${ports.blue}`, green: `127.0.0.1:${ports.green}` };

    client = etcdClient(etcd.url);
    await client.put(`${PREFIX}regions/local`).value(JSON.stringify({ location: { lat: 51.5, lon: -0.1 } })).exec();
    await client.put(`${PREFIX}routes/web`).value(JSON.stringify({ pathPrefix: '/', service: 'web' })).exec();
    await client.put(SERVICE_KEY).value(serviceValue('blue', addresses)).exec();

    const proxyPort = await freePort();
    const adminPort = await freePort();
    const configFile = join(dir, 'meridian.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        node: { name: 'bench', region: 'local', location: { lat: 51.5, lon: -0.1 } },
        proxy: { listen: `127.0.0.1:${proxyPort}`, debugHeaders: true },
        admin: { listen: `127.0.0.1:${adminPort}` },
        store: { etcd: { endpoints: [etcd.url], prefix: PREFIX }, snapshot: join(dir, 'last-good.json') },
      }),
    );
    meridian = startProcess('meridian', node, [meridianCli, 'start', '--config', configFile, '--log-level', 'warn']);
    await waitForPort(meridian, proxyPort);
    await waitServing(meridian, proxyPort);
    const started = meridian;
    return {
      dir,
      proxyPort,
      adminPort,
      addresses,
      etcdUrl: etcd.url,
      client,
      meridian: started,
      async state() {
        const res = await httpGet(adminPort, '/api/v1/state');
        if (res.status !== 200) throw new Error(`GET /api/v1/state answered ${res.status}`);
        return parseState(res.body);
      },
      stop,
      killAll,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
