/**
 * bench/failover: steady keep-alive load through Meridian from the proxy's own
 * region (eu-west) while upstream processes are killed, restarted, frozen and
 * drained, one phase after another without pausing the load. Prints one table:
 * per phase requests, errors, latency, which regions answered, and how long
 * traffic took to move after the event.
 */
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { benchArgs, positiveInt } from '../lib/args.js';
import { renderTable } from '../lib/table.js';
import { SERVICE_SETTINGS, freezeUpstream, killUpstream, restartUpstream, startCluster, thawUpstream, type Cluster } from './cluster.js';
import {
  errorKind,
  firstFromRegionMs,
  formatCounts,
  formatMs,
  lastFromEndpointMs,
  rerouteMs,
  summarize,
  within,
  type WindowSummary,
} from './summary.js';
import { isError, startTraffic, type Sample, type Traffic } from '../lib/traffic.js';

const args = benchArgs(['phase-seconds', 'connections', 'wait-seconds']);
const phaseMs = positiveInt('phase-seconds', args['phase-seconds'], 4) * 1000;
const connections = positiveInt('connections', args.connections, 20);
const waitMs = positiveInt('wait-seconds', args['wait-seconds'], 15) * 1000;
/** autocannon gives up on a request after this long and counts a timeout. */
const CLIENT_TIMEOUT_SECONDS = 5;
const WARMUP_MS = 1_000;
/** The service's perTryTimeout: answers slower than this are listed on stderr. */
const SLOW_MS = 500;

/** One finished phase, as the table shows it. */
interface PhaseRow {
  readonly name: string;
  readonly summary: WindowSummary;
  /** Reroute / recover / settle time, or `-`. */
  readonly timing: string;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function sleepUntil(at: number): Promise<void> {
  const left = at - performance.now();
  if (left > 0) await sleep(left);
}

/** Polls `done` every 25 ms until it holds or `deadline` passes; returns whether it held. */
async function waitFor(done: () => boolean, deadline: number): Promise<boolean> {
  while (!done()) {
    if (performance.now() >= deadline) return false;
    await sleep(25);
  }
  return true;
}

/** Whether endpoint `address` answered 2xx at or after `from`. */
function served(samples: readonly Sample[], from: number, address: string): boolean {
  for (let i = samples.length - 1; i >= 0; i--) {
    const s = samples[i] as Sample;
    if (s.at < from) return false;
    if (s.endpoint === address && !isError(s)) return true;
  }
  return false;
}

/** Logs where and when errors happened in a window, relative to its event, so that misbehaviour can be told apart. */
function logErrors(samples: readonly Sample[], eventAt: number): void {
  const errors = samples.filter(isError);
  if (errors.length === 0) return;
  const first = errors[0] as Sample;
  const last = errors.at(-1) as Sample;
  log(`  errors from +${formatMs(first.at - eventAt)} ms to +${formatMs(last.at - eventAt)} ms after the event; first: ${errorKind(first)}, last: ${errorKind(last)}`);
}

async function runPhases(cluster: Cluster, traffic: Traffic): Promise<PhaseRow[]> {
  const rows: PhaseRow[] = [];
  const samples = traffic.samples;
  const [e1, e2] = [cluster.upstream('e1'), cluster.upstream('e2')];

  /** Runs `body` (which returns the timing cell) as one phase and records its window. */
  const phase = async (name: string, body: (from: number) => Promise<string>): Promise<void> => {
    log(`phase ${name}`);
    const from = performance.now();
    const timing = await body(from);
    const window = within(samples, from, performance.now());
    const summary = summarize(window);
    log(
      `  ${summary.requests} requests, ${summary.errors} errors, p50 ${formatMs(summary.p50Ms)} ms, p99 ${formatMs(summary.p99Ms)} ms; ` +
        `${formatCounts(summary.regions)}${timing === '-' ? '' : `; ${timing}`}`,
    );
    const byEndpoint = new Map<string, number>();
    for (const s of window) if (!isError(s)) byEndpoint.set(s.endpoint, (byEndpoint.get(s.endpoint) ?? 0) + 1);
    const names = cluster.upstreams.map((u) => `${u.name} ${byEndpoint.get(u.address) ?? 0}`);
    log(`  2xx by endpoint: ${names.join(', ')}`);
    const slow = window.filter((s) => s.latencyMs > SLOW_MS);
    if (slow.length > 0) log(`  ${slow.length} answers slower than ${SLOW_MS} ms, the slowest at +${formatMs(slow.reduce((a, b) => (b.latencyMs > a.latencyMs ? b : a)).at - from)} ms`);
    logErrors(window, from);
    rows.push({ name, summary, timing });
  };

  await phase('steady', async (from) => {
    await sleepUntil(from + phaseMs);
    return '-';
  });

  await phase('kill endpoint (e1)', async (from) => {
    await killUpstream(e1);
    await sleepUntil(from + phaseMs);
    return '-';
  });

  await phase('kill region (e2)', async (from) => {
    await killUpstream(e2);
    await sleepUntil(from + phaseMs);
    const ms = rerouteMs(within(samples, from, performance.now()), from, 'eu-west');
    return ms === null ? 'never rerouted' : `reroute ${formatMs(ms)} ms`;
  });

  await phase('restart e1, e2', async (from) => {
    await Promise.all([restartUpstream(e1), restartUpstream(e2)]);
    log(`  e1, e2 listening after ${formatMs(performance.now() - from)} ms`);
    const deadline = from + phaseMs + waitMs;
    await waitFor(() => firstFromRegionMs(samples, from, 'eu-west') !== null, deadline);
    const both = await waitFor(() => served(samples, from, e1.address) && served(samples, from, e2.address), deadline);
    if (!both) log(`  e1 or e2 not serving again within ${waitMs / 1000}s of the phase length`);
    await sleepUntil(from + phaseMs);
    const ms = firstFromRegionMs(samples, from, 'eu-west');
    return ms === null ? 'eu-west not back' : `recover ${formatMs(ms)} ms`;
  });

  await phase('freeze endpoint (e1)', async (from) => {
    freezeUpstream(e1);
    await sleepUntil(from + phaseMs);
    return '-';
  });

  await phase('drain endpoint (e2)', async (from) => {
    thawUpstream(e1);
    const back = await waitFor(() => served(samples, from, e1.address), from + waitMs);
    log(back ? `  e1 continued; serving again after ${formatMs(performance.now() - from)} ms` : `  e1 continued but not serving within ${waitMs / 1000}s`);
    const writeAt = performance.now();
    e2.drain = true;
    cluster.writeRoutes();
    await sleepUntil(writeAt + phaseMs);
    const end = performance.now();
    const ms = lastFromEndpointMs(samples, writeAt, e2.address);
    const late = within(samples, writeAt, end).filter((s) => s.endpoint === e2.address).length;
    log(`  e2 answers after the routes file was written: ${late}`);
    return end - (writeAt + ms) < 250 ? 'e2 still served at the end' : `settle ${formatMs(ms)} ms`;
  });
  return rows;
}

function report(rows: readonly PhaseRow[]): void {
  const header = ['phase', 'requests', 'errors', 'p50 ms', 'p99 ms', 'max ms', '2xx by region', 'moved', 'errors by kind'];
  const cells = rows.map((r) => [
    r.name,
    String(r.summary.requests),
    String(r.summary.errors),
    formatMs(r.summary.p50Ms),
    formatMs(r.summary.p99Ms),
    formatMs(r.summary.maxMs),
    formatCounts(r.summary.regions),
    r.timing,
    formatCounts(r.summary.errorKinds),
  ]);
  process.stdout.write(`${renderTable(header, cells)}\n`);
}

async function main(): Promise<void> {
  log(`service web: ${JSON.stringify(SERVICE_SETTINGS)}`);
  log(`load: ${connections} keep-alive connections, GET /, client timeout ${CLIENT_TIMEOUT_SECONDS}s; ${phaseMs / 1000}s per phase, waits up to ${waitMs / 1000}s more`);
  const cluster = await startCluster();
  const onSignal = (signal: NodeJS.Signals): void => {
    cluster.killAll();
    rmSync(cluster.dir, { recursive: true, force: true });
    process.stderr.write(`bench/failover: ${signal}, every process killed\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let traffic: Traffic | null = null;
  let rows: PhaseRow[];
  try {
    const maxSeconds = Math.ceil((WARMUP_MS + 6 * phaseMs + 2 * waitMs) / 1000) + 30;
    const started = performance.now();
    traffic = startTraffic(cluster.proxyPort, connections, CLIENT_TIMEOUT_SECONDS, maxSeconds);
    const load = traffic;
    const warm = await waitFor(() => firstFromRegionMs(load.samples, started, 'eu-west') !== null, started + 10_000);
    if (!warm) throw new Error(`no 2xx from eu-west within 10s; meridian output:\n${cluster.meridian.output()}`);
    await sleep(WARMUP_MS);
    const warmup = summarize(within(load.samples, started, performance.now()));
    log(`warm-up: ${warmup.requests} requests, ${warmup.errors} errors, ${formatCounts(warmup.regions)}`);
    rows = await runPhases(cluster, load);
  } finally {
    if (traffic !== null) {
      const { sent, seen } = await traffic.stop();
      log(`load: ${sent} requests sent, ${seen} answered or failed (the rest were in flight at the stop)`);
    }
    await cluster.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  report(rows);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/failover: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
