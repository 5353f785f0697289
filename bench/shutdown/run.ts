/**
 * bench/shutdown: what clients see when Meridian is stopped under keep-alive
 * load behind a load balancer. Each run starts `meridian start`, sends load
 * with keep-alive clients, sends SIGTERM, and lets a watcher that polls
 * readyz (as a load balancer's health check does) tell the clients to stop a
 * little later. Runs with proxy.shutdownDelay 0s and 2s, and prints per run
 * the connections cut under a request (resets) and refused, as one table.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { benchArgs, positiveInt } from '../lib/args.js';
import { freePort, startProcess, waitForPort, waitReady } from '../lib/process.js';
import { renderTable } from '../lib/table.js';
import { startClients, watchReadiness, type ClientTally } from './clients.js';

const args = benchArgs(['runs', 'clients', 'load-ms', 'lag-ms', 'poll-ms']);
const runs = positiveInt('runs', args.runs, 10);
const clients = positiveInt('clients', args.clients, 8);
/** Load before SIGTERM. */
const loadMs = positiveInt('load-ms', args['load-ms'], 1_000);
/** How long after the watcher's failed check the clients keep sending: the load balancer taking the node out. */
const lagMs = positiveInt('lag-ms', args['lag-ms'], 500);
/** Health-check interval of the watcher. */
const pollMs = positiveInt('poll-ms', args['poll-ms'], 150);
const DELAYS = ['0s', '2s'] as const;

const node = process.execPath;
const upstreamScript = fileURLToPath(new URL('../http/upstream.js', import.meta.url));
const meridianCli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** One run, as the table shows it. */
interface RunRow {
  readonly delay: string;
  readonly run: number;
  readonly tally: ClientTally;
  /** ms from SIGTERM to the watcher's first failed check. */
  readonly noticeMs: number | null;
  /** ms from SIGTERM to the process exit. */
  readonly exitMs: number;
  readonly exitCode: number | null;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** One SIGTERM under load with `proxy.shutdownDelay: delay`. */
async function runOnce(dir: string, delay: string, run: number): Promise<RunRow> {
  const proxyPort = await freePort();
  const adminPort = await freePort();
  const configFile = join(dir, `meridian-${delay}-${run}.yaml`);
  writeFileSync(
    configFile,
    stringify({
      node: { name: 'bench' },
      proxy: { listen: `127.0.0.1:${proxyPort}`, shutdownDelay: delay, shutdownTimeout: '10s' },
      admin: { listen: `127.0.0.1:${adminPort}` },
      store: { file: join(dir, 'routes.yaml'), snapshot: join(dir, 'last-good.json') },
    }),
  );
  const meridian = startProcess('meridian', node, [meridianCli, 'start', '--config', configFile, '--log-level', 'warn']);
  try {
    await waitForPort(meridian, proxyPort);
    await waitReady(meridian, adminPort);
    const load = startClients(proxyPort, clients);
    await sleep(loadMs);
    const watching = new AbortController();
    const watcher = watchReadiness(adminPort, pollMs, watching.signal);
    const exited = new Promise<number | null>((resolve) => meridian.child.once('exit', (code) => resolve(code)));
    const termAt = performance.now();
    meridian.child.kill('SIGTERM');
    const exitAt = exited.then((code) => ({ code, at: performance.now() }));
    const noticedAt = await Promise.race([watcher, exitAt.then(() => null)]);
    watching.abort();
    await sleep(lagMs);
    await load.stop();
    const exit = await exitAt;
    return { delay, run, tally: load.tally, noticeMs: noticedAt === null ? null : noticedAt - termAt, exitMs: exit.at - termAt, exitCode: exit.code };
  } finally {
    await meridian.stop();
  }
}

function report(rows: readonly RunRow[]): void {
  const header = ['shutdownDelay', 'run', 'requests', 'ok', 'resets', 'refused', 'incomplete', 'non-2xx', 'other', 'conn: close', 'notice ms', 'exit ms', 'exit'];
  const cells = rows.map((r) => [
    r.delay,
    String(r.run),
    String(r.tally.requests),
    String(r.tally.ok),
    String(r.tally.resets),
    String(r.tally.refused),
    String(r.tally.incomplete),
    String(r.tally.non2xx),
    r.tally.other.size === 0 ? '0' : [...r.tally.other].map(([k, n]) => `${k} ${n}`).join(', '),
    String(r.tally.closing),
    r.noticeMs === null ? '-' : r.noticeMs.toFixed(0),
    r.exitMs.toFixed(0),
    String(r.exitCode),
  ]);
  for (const delay of DELAYS) {
    const of = rows.filter((r) => r.delay === delay);
    const sum = (pick: (t: ClientTally) => number): number => of.reduce((n, r) => n + pick(r.tally), 0);
    cells.push([`${delay} total`, '', String(sum((t) => t.requests)), String(sum((t) => t.ok)), String(sum((t) => t.resets)), String(sum((t) => t.refused)), String(sum((t) => t.incomplete)), String(sum((t) => t.non2xx)), '', String(sum((t) => t.closing)), '', '', '']);
  }
  process.stdout.write(`${renderTable(header, cells)}\n`);
}

async function main(): Promise<void> {
  log(`${runs} runs per shutdownDelay (${DELAYS.join(', ')}); ${clients} keep-alive clients, ${loadMs} ms of load before SIGTERM;`);
  log(`readyz polled every ${pollMs} ms; clients stop ${lagMs} ms after the first failed check`);
  const dir = mkdtempSync(join(tmpdir(), 'meridian-shutdown-bench-'));
  const upstreamPort = await freePort();
  const upstream = startProcess('upstream', node, [upstreamScript, '--port', String(upstreamPort), '--size', '256']);
  const rows: RunRow[] = [];
  try {
    await waitForPort(upstream, upstreamPort);
    writeFileSync(
      join(dir, 'routes.yaml'),
      stringify({
        regions: { local: { location: { lat: 0, lon: 0 } } },
        services: { web: { versions: { stable: { endpoints: { local: [`127.0.0.1:${upstreamPort}`] } } } } },
        routes: { web: { pathPrefix: '/', service: 'web' } },
      }),
    );
    for (const delay of DELAYS) {
      for (let run = 1; run <= runs; run++) {
        const row = await runOnce(dir, delay, run);
        log(`shutdownDelay ${delay} run ${run}: ${row.tally.requests} requests, ${row.tally.resets} resets, ${row.tally.refused} refused, exit ${row.exitCode}`);
        rows.push(row);
      }
    }
  } finally {
    await upstream.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  report(rows);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/shutdown: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
