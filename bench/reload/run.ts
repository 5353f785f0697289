/**
 * bench/reload: what a large routing-table reload costs the requests flowing
 * meanwhile. A Meridian serves a table of `--routes` services and routes from a
 * file; an open-loop probe (`--probe-interval-ms`) measures latency from each
 * request's due time, while wrk adds background load. Rounds alternate between
 * a reload that changes every service and one that changes a single service;
 * each compares the probe's p99 while the reload is parsed, compiled and
 * swapped with its p99 in a quiet window of the same round just before.
 */
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { benchArgs, positiveInt } from '../lib/args.js';
import { findProgram, freePort, startProcess, waitForPort, type BenchProcess } from '../lib/process.js';
import { renderTable } from '../lib/table.js';
import { quantile, startProbe, type ProbeSample } from './probe.js';
import { bigTable } from './table.js';

const args = benchArgs(['routes', 'rounds', 'window', 'load-connections', 'probe-interval-ms', 'cli']);
const routeCount = positiveInt('routes', args.routes, 10_000);
const rounds = positiveInt('rounds', args.rounds, 6);
const windowMs = positiveInt('window', args.window, 3) * 1000;
const loadConnections = args['load-connections'] === '0' ? 0 : positiveInt('load-connections', args['load-connections'], 4);
const intervalMs = positiveInt('probe-interval-ms', args['probe-interval-ms'], 5);

const node = process.execPath;
const upstreamScript = fileURLToPath(new URL('../http/upstream.js', import.meta.url));
/** The Meridian to measure: this checkout's build, or another build's `dist/cli.js` (`--cli`) for a before/after comparison. */
const meridianCli = args.cli ?? fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

function fetchText(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

async function revision(adminPort: number): Promise<number> {
  const metrics = await fetchText(adminPort, '/metrics');
  return Number(/^meridian_config_revision (\d+)/m.exec(metrics)?.[1] ?? 0);
}

async function waitRevision(adminPort: number, atLeast: number, timeoutMs = 120_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if ((await revision(adminPort)) >= atLeast) return performance.now();
    if (performance.now() > deadline) throw new Error(`revision ${atLeast} not applied within ${timeoutMs} ms`);
    await sleep(20);
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function spread(values: readonly number[]): string {
  if (values.length === 0) return '-';
  const fmt = (v: number): string => v.toFixed(1);
  return `${fmt(median(values))} (${fmt(Math.min(...values))}-${fmt(Math.max(...values))})`;
}

interface RoundResult {
  kind: 'every service' | 'one service';
  applyMs: number;
  quietP99: number;
  reloadP99: number;
  reloadMax: number;
  failed: number;
}

const processes: BenchProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'meridian-bench-reload-'));
const cleanup = async (): Promise<void> => {
  await Promise.all(processes.map((p) => p.stop()));
  rmSync(dir, { recursive: true, force: true });
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanup().then(() => process.exit(1)));

try {
  const upstreamPort = await freePort();
  const upstream = startProcess('upstream', node, [upstreamScript, '--port', String(upstreamPort), '--size', '64']);
  processes.push(upstream);
  await waitForPort(upstream, upstreamPort);
  const address = `127.0.0.1:${upstreamPort}`;
  process.stderr.write(`building ${routeCount}-route tables...\n`);
  const texts = { a: bigTable(routeCount, address, 'a'), b: bigTable(routeCount, address, 'b'), a1: bigTable(routeCount, address, 'a', 7), b1: bigTable(routeCount, address, 'b', 7) };
  process.stderr.write(`routes file: ${(texts.a.length / 1024 / 1024).toFixed(1)} MiB of YAML\n`);
  const routesFile = join(dir, 'routes.yaml');
  writeFileSync(routesFile, texts.a);
  const [proxyPort, adminPort] = [await freePort(), await freePort()];
  const conf = join(dir, 'meridian.yaml');
  writeFileSync(conf, JSON.stringify({ node: { name: 'bench' }, proxy: { listen: `127.0.0.1:${proxyPort}` }, admin: { listen: `127.0.0.1:${adminPort}` }, store: { file: routesFile, snapshot: join(dir, 'snap.json') } }));
  const meridian = startProcess('meridian', node, [meridianCli, 'start', '--config', conf, '--log-level', 'warn']);
  processes.push(meridian);
  await waitForPort(meridian, adminPort, 120_000);
  await waitRevision(adminPort, 1);
  let applied = await revision(adminPort);

  const wrk = findProgram('wrk');
  if (loadConnections > 0 && wrk !== null) {
    processes.push(startProcess('wrk', wrk, ['-t1', `-c${loadConnections}`, '-d3600s', `http://127.0.0.1:${proxyPort}/`]));
  } else if (loadConnections > 0) {
    process.stderr.write('wrk is not on PATH: no background load (apt-get install wrk)\n');
  }
  const probe = startProbe(proxyPort, intervalMs);
  await sleep(2_000);
  let flavour: 'a' | 'b' = 'a';
  let changed = false;
  const results: RoundResult[] = [];
  for (let round = 0; round < rounds; round++) {
    const kind = round % 2 === 0 ? 'every service' : 'one service';
    if (kind === 'every service') flavour = flavour === 'a' ? 'b' : 'a';
    else changed = !changed;
    const text = texts[`${flavour}${changed ? '1' : ''}` as keyof typeof texts];
    const quietFrom = performance.now();
    await sleep(windowMs);
    const quietTo = performance.now();
    writeFileSync(`${routesFile}.tmp`, text);
    const writtenAt = performance.now();
    renameSync(`${routesFile}.tmp`, routesFile);
    const appliedAt = await waitRevision(adminPort, applied + 1);
    applied++;
    await sleep(500);
    const windowTo = appliedAt + 500;
    const samples: ProbeSample[] = probe.samples;
    const failed = samples.filter((s) => s.due >= quietFrom && s.due < windowTo && !s.ok).length;
    const result: RoundResult = {
      kind,
      applyMs: appliedAt - writtenAt,
      quietP99: quantile(samples, quietFrom, quietTo, 0.99),
      reloadP99: quantile(samples, writtenAt, windowTo, 0.99),
      reloadMax: quantile(samples, writtenAt, windowTo, 1),
      failed,
    };
    results.push(result);
    process.stderr.write(`round ${round + 1}/${rounds} (${kind}): applied in ${result.applyMs.toFixed(0)} ms; probe p99 quiet ${result.quietP99.toFixed(1)} ms, during reload ${result.reloadP99.toFixed(1)} ms (max ${result.reloadMax.toFixed(1)} ms); ${failed} failed\n`);
    await sleep(1_000);
  }
  await probe.stop();
  const rows = (['every service', 'one service'] as const).map((kind) => {
    const of = results.filter((r) => r.kind === kind);
    return [
      kind,
      String(of.length),
      spread(of.map((r) => r.applyMs)),
      spread(of.map((r) => r.quietP99)),
      spread(of.map((r) => r.reloadP99)),
      spread(of.map((r) => r.reloadP99 - r.quietP99)),
      spread(of.map((r) => r.reloadMax)),
      String(of.reduce((sum, r) => sum + r.failed, 0)),
    ];
  });
  process.stdout.write(`\nreload of a ${routeCount}-route table (${(texts.a.length / 1024 / 1024).toFixed(1)} MiB YAML); probe every ${intervalMs} ms, wrk -c${loadConnections} alongside; median (min-max) over rounds, ms\n\n`);
  process.stdout.write(`${renderTable(['change', 'rounds', 'applied after', 'p99 quiet', 'p99 reloading', 'p99 added', 'max reloading', 'failed'], rows)}\n`);
} finally {
  await cleanup();
}
