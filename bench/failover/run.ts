/**
 * bench/failover: steady keep-alive load from one client region (the proxy's
 * own, eu-west) through Meridian while upstream processes are killed, frozen
 * and drained. Per phase: requests, errors, latency, which regions answered,
 * and how long traffic took to settle after the event.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { benchArgs, positiveInt } from '../lib/args.js';
import { freePort, startProcess, waitForPort, type BenchProcess } from '../lib/process.js';
import { renderTable } from '../lib/table.js';

const args = benchArgs(['phase-seconds', 'connections']);
const phaseSeconds = positiveInt('phase-seconds', args['phase-seconds'], 5);
const connections = positiveInt('connections', args.connections, 20);

const node = process.execPath;
const upstreamScript = new URL('../http/upstream.js', import.meta.url).pathname;
const meridianCli = new URL('../../dist/cli.js', import.meta.url).pathname;

/** Service settings under test: checks every second so a run stays short. */
const SERVICE = {
  steering: 'nearest',
  healthCheck: { interval: '1s', timeout: '500ms' },
  retries: { attempts: 2, perTryTimeout: '500ms' },
  timeouts: { connect: '250ms', request: '10s' },
};

/** One upstream process and the port it keeps across restarts. */
interface Endpoint {
  readonly name: string;
  readonly region: string;
  readonly port: number;
  proc: BenchProcess;
}

/** A response as the load saw it. */
interface Seen {
  readonly at: number;
  readonly status: number;
  readonly region: string;
}

/** What one phase measured. */
interface PhaseResult {
  readonly name: string;
  readonly requests: number;
  readonly errors: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly regions: string;
  readonly event: string;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function startEndpoint(name: string, port: number): BenchProcess {
  return startProcess(name, node, [upstreamScript, '--port', String(port), '--size', '256']);
}

function routesDoc(endpoints: readonly Endpoint[], drainEuWest: boolean): string {
  const list = (region: string): string[] => endpoints.filter((e) => e.region === region).map((e) => `127.0.0.1:${e.port}`);
  return JSON.stringify({
    regions: {
      'eu-west': { location: { lat: 53.35, lon: -6.26 }, drain: drainEuWest },
      'us-east': { location: { lat: 38.9, lon: -77.04 } },
      'ap-south': { location: { lat: 19.08, lon: 72.88 } },
    },
    services: {
      web: {
        ...SERVICE,
        versions: { stable: { endpoints: Object.fromEntries(['eu-west', 'us-east', 'ap-south'].map((r) => [r, list(r)])) } },
      },
    },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  });
}

/** Runs autocannon for one phase, calling `event` shortly after the start; records every response. */
async function phase(name: string, port: number, event: (() => Promise<string> | string) | null, settle: ((seen: readonly Seen[], eventAt: number) => string) | null): Promise<PhaseResult> {
  const seen: Seen[] = [];
  const run = autocannon({
    url: `http://127.0.0.1:${port}/`,
    connections,
    duration: phaseSeconds,
    requests: [
      {
        method: 'GET',
        path: '/',
        onResponse: (status: number, _body: string, _context: object, headers: IncomingHttpHeaders | undefined) => {
          const region = headers?.['x-meridian-region'];
          seen.push({ at: Date.now(), status, region: typeof region === 'string' ? region : '-' });
        },
      },
    ],
  });
  let eventAt = 0;
  let note = '';
  if (event !== null) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    eventAt = Date.now();
    note = await event();
  }
  const result = await run;
  const regions = new Map<string, number>();
  for (const s of seen) regions.set(s.region, (regions.get(s.region) ?? 0) + 1);
  const settled = settle === null ? '' : settle(seen, eventAt);
  log(`${name}: ${result.requests.total} requests, ${result.errors + result.timeouts + result.non2xx} errors; ${[note, settled].filter((x) => x !== '').join("; ")}`);
  return {
    name,
    requests: result.requests.total,
    errors: result.errors + result.timeouts + result.non2xx,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    regions: [...regions].map(([r, n]) => `${r} ${n}`).join(', '),
    event: [note, settled].filter((x) => x !== '').join('; '),
  };
}

/** Milliseconds from the event to the first answer from a region other than `left`. */
function rerouted(left: string): (seen: readonly Seen[], at: number) => string {
  return (seen, at) => {
    const first = seen.find((s) => s.at >= at && s.status === 200 && s.region !== left);
    return first === undefined ? 'never rerouted' : `rerouted in ${first.at - at} ms`;
  };
}

/** Milliseconds from the event to the first answer from `region`. */
function returnedTo(region: string): (seen: readonly Seen[], at: number) => string {
  return (seen, at) => {
    const first = seen.find((s) => s.at >= at && s.status === 200 && s.region === region);
    return first === undefined ? `not back on ${region}` : `back on ${region} in ${first.at - at} ms`;
  };
}

/** Milliseconds from the event to the last answer from `region`. */
function leftRegion(region: string): (seen: readonly Seen[], at: number) => string {
  return (seen, at) => {
    const last = seen.filter((s) => s.at >= at && s.region === region).at(-1);
    return last === undefined ? `no answer from ${region} after it` : `last ${region} answer after ${last.at - at} ms`;
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-failover-'));
  chmodSync(dir, 0o755);
  const specs: [string, string][] = [
    ['e1', 'eu-west'],
    ['e2', 'eu-west'],
    ['u1', 'us-east'],
    ['u2', 'us-east'],
    ['a1', 'ap-south'],
  ];
  const endpoints: Endpoint[] = [];
  let meridian: BenchProcess | null = null;
  const results: PhaseResult[] = [];
  try {
    for (const [name, region] of specs) {
      const port = await freePort();
      endpoints.push({ name, region, port, proc: startEndpoint(name, port) });
    }
    for (const e of endpoints) await waitForPort(e.proc, e.port);
    const [e1, e2] = endpoints as [Endpoint, Endpoint];
    const port = await freePort();
    const routesFile = join(dir, 'routes.json');
    writeFileSync(routesFile, routesDoc(endpoints, false));
    writeFileSync(
      join(dir, 'meridian.json'),
      JSON.stringify({
        node: { name: 'bench', region: 'eu-west', location: { lat: 51.5, lon: -0.1 } },
        proxy: { listen: `127.0.0.1:${port}`, debugHeaders: true },
        admin: { listen: '127.0.0.1:0' },
        store: { file: routesFile, snapshot: join(dir, 'last-good.json') },
      }),
    );
    meridian = startProcess('meridian', node, [meridianCli, 'start', '--config', join(dir, 'meridian.json'), '--log-level', 'warn']);
    await waitForPort(meridian, port);
    log(`service settings: ${JSON.stringify(SERVICE)}; ${connections} connections, ${phaseSeconds}s per phase`);
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // first health checks

    results.push(await phase('steady', port, null, null));
    results.push(await phase('kill endpoint (e1)', port, () => (e1.proc.child.kill('SIGKILL'), 'e1 killed'), null));
    results.push(await phase('kill region (e2)', port, () => (e2.proc.child.kill('SIGKILL'), 'eu-west dead'), rerouted('eu-west')));
    results.push(
      await phase(
        'recover eu-west',
        port,
        () => {
          e1.proc = startEndpoint('e1', e1.port);
          e2.proc = startEndpoint('e2', e2.port);
          return 'e1, e2 restarted';
        },
        returnedTo('eu-west'),
      ),
    );
    results.push(await phase('freeze endpoint (e1)', port, () => (e1.proc.child.kill('SIGSTOP'), 'e1 stopped'), null));
    e1.proc.child.kill('SIGCONT');
    await new Promise((resolve) => setTimeout(resolve, 3_000)); // e1 healthy again
    results.push(
      await phase(
        'drain eu-west',
        port,
        () => {
          writeFileSync(routesFile, routesDoc(endpoints, true));
          return 'routes file written';
        },
        leftRegion('eu-west'),
      ),
    );
  } finally {
    await meridian?.stop();
    for (const e of endpoints) {
      e.proc.child.kill('SIGCONT');
      await e.proc.stop();
    }
    rmSync(dir, { recursive: true, force: true });
  }
  const header = ['phase', 'requests', 'errors', 'p50 ms', 'p99 ms', 'max ms', 'answered by', 'event'];
  const rows = results.map((r) => [r.name, String(r.requests), String(r.errors), String(r.p50), String(r.p99), String(r.max), r.regions, r.event]);
  process.stdout.write(`${renderTable(header, rows)}\n`);
  process.stdout.write(`service: ${JSON.stringify(SERVICE)}; ${connections} connections; ${phaseSeconds}s per phase; event 500 ms into the phase\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/failover: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
