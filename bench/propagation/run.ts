/**
 * bench/propagation: how fast a routing change written to etcd reaches live
 * traffic. Under steady keep-alive load through Meridian, the split of service
 * `web` is flipped between `blue` and `green` with plain puts, one after
 * another; each put is timed to the first answer from the new version, and
 * answers the old version still gave afterwards are counted. Prints one table.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { benchArgs, positiveInt } from '../lib/args.js';
import { findProgram } from '../lib/process.js';
import { renderTable } from '../lib/table.js';
import { SERVICE_KEY, otherColour, serviceValue, startCluster, type Cluster, type Colour } from './cluster.js';
import { firstFrom, formatMs, measureChange, percentile, within, type Change, type ChangeOutcome } from './measure.js';
import { isError, startTraffic, type Sample, type Traffic } from '../lib/traffic.js';

const args = benchArgs(['changes', 'gap-ms', 'connections']);
const changeCount = positiveInt('changes', args.changes, 100);
const gapMs = positiveInt('gap-ms', args['gap-ms'], 50);
const connections = positiveInt('connections', args.connections, 10);
/** autocannon gives up on a request after this long and counts a timeout. */
const CLIENT_TIMEOUT_SECONDS = 5;
const WARMUP_MS = 1_000;
/** A change with no answer from its new version within this long is reported lost, and the run stops there. */
const PROPAGATION_TIMEOUT_MS = 5_000;

/** The figures of one run, as the table shows them. */
interface RunSummary {
  readonly changes: readonly Change[];
  readonly outcomes: readonly ChangeOutcome[];
  /** Samples from the first put to the end of the last change's window. */
  readonly window: readonly Sample[];
  readonly seconds: number;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** The kind of an error sample: status and `x-meridian-error`, or the client-side error code. */
function errorKind(s: Sample): string {
  return s.status === 0 ? s.error : `${s.status} ${s.error === '-' || s.error === '' ? '(no x-meridian-error)' : s.error}`;
}

/** `key count, key count` over `samples`, most first, or `none`. */
function formatCounts(samples: readonly Sample[], keyOf: (s: Sample) => string): string {
  const counts = new Map<string, number>();
  for (const s of samples) counts.set(keyOf(s), (counts.get(keyOf(s)) ?? 0) + 1);
  const sorted = [...counts].sort((a, b) => b[1] - a[1]);
  return sorted.length === 0 ? 'none' : sorted.map(([k, n]) => `${k} ${n}`).join(', ');
}

/** Polls `done` every few ms until it holds or `deadline` passes; returns whether it held. */
async function waitFor(done: () => boolean, deadline: number): Promise<boolean> {
  while (!done()) {
    if (performance.now() >= deadline) return false;
    await sleep(2);
  }
  return true;
}

/** Rejects when `promise` has not settled within `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms}ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Logs Meridian's admin state (its revision against the last put's) and anything it printed. */
async function logMeridian(cluster: Cluster, lastRevision: number): Promise<void> {
  try {
    const state = await withTimeout(cluster.state(), 2_000, 'GET /api/v1/state');
    log(`meridian: source ${state.source}, revision ${state.revision} (last put: ${lastRevision}), errors: ${state.errors.length === 0 ? 'none' : state.errors.join('; ')}`);
  } catch (err) {
    log(`meridian: no admin state (${(err as Error).message})`);
  }
  const output = cluster.meridian.output().trim();
  if (output !== '') log(`meridian output (last lines):\n${output.split('\n').slice(-10).join('\n')}`);
}

/** Flips the split `changeCount` times, each once the previous one served its new version and `gapMs` passed. */
async function runChanges(cluster: Cluster, samples: readonly Sample[]): Promise<{ changes: Change[]; end: number; lost: boolean }> {
  const changes: Change[] = [];
  let live: Colour = 'blue';
  for (let i = 0; i < changeCount; i++) {
    const colour = otherColour(live);
    const put = cluster.client.put(SERVICE_KEY).value(serviceValue(colour, cluster.addresses));
    const putAt = performance.now();
    const response = await withTimeout(put.exec(), 5_000, `put ${i + 1}`);
    const change: Change = { colour, old: live, putAt, ackAt: performance.now(), revision: Number(response.header.revision) };
    changes.push(change);
    const served = await waitFor(() => firstFrom(samples, colour, putAt) !== null, putAt + PROPAGATION_TIMEOUT_MS);
    if (!served) {
      log(`change ${i + 1} (to ${colour}, etcd revision ${change.revision}): no answer from ${colour} within ${PROPAGATION_TIMEOUT_MS} ms; stopping here`);
      const since = within(samples, putAt, performance.now());
      log(`  answers since that put: ${formatCounts(since, (s) => (isError(s) ? `error ${errorKind(s)}` : s.version))}`);
      return { changes, end: performance.now(), lost: true };
    }
    live = colour;
    await sleep(gapMs);
    if ((i + 1) % 10 === 0 || i + 1 === changeCount) log(`  ${i + 1} of ${changeCount} changes served`);
  }
  return { changes, end: performance.now(), lost: false };
}

function summarizeRun(samples: readonly Sample[], changes: readonly Change[], end: number): RunSummary {
  const outcomes = changes.map((c, i) => measureChange(samples, c, changes[i + 1]?.putAt ?? end));
  const start = changes[0]?.putAt ?? end;
  return { changes, outcomes, window: within(samples, start, end), seconds: (end - start) / 1000 };
}

function logDetails(run: RunSummary): void {
  const acks = run.changes.map((c) => c.ackAt - c.putAt).sort((a, b) => a - b);
  log(`etcd put acknowledged: p50 ${formatMs(percentile(acks, 50))} ms, max ${formatMs(acks.at(-1) ?? Number.NaN)} ms`);
  const latencies = run.window
    .filter((s) => s.status !== 0)
    .map((s) => s.at - s.sentAt)
    .sort((a, b) => a - b);
  log(`request latency during the changes: p50 ${formatMs(percentile(latencies, 50))} ms, p99 ${formatMs(percentile(latencies, 99))} ms`);
  run.outcomes.forEach((o, i) => {
    if (o.stragglers > 0) log(`  change ${i + 1}: ${o.stragglers} stragglers (old version, request written after the first new-version answer)`);
  });
  const errors = run.window.filter(isError);
  if (errors.length > 0) log(`errors by kind: ${formatCounts(errors, errorKind)}`);
}

function report(run: RunSummary): void {
  const times = run.outcomes
    .map((o) => o.propagationMs)
    .filter((ms): ms is number => ms !== null)
    .sort((a, b) => a - b);
  const sum = (pick: (o: ChangeOutcome) => number): number => run.outcomes.reduce((total, o) => total + pick(o), 0);
  const header = ['changes', 'lost', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'stragglers', 'in flight', 'requests', 'errors', 'req/s'];
  const row = [
    String(run.changes.length),
    String(run.changes.length - times.length),
    formatMs(percentile(times, 50)),
    formatMs(percentile(times, 90)),
    formatMs(percentile(times, 99)),
    formatMs(times.at(-1) ?? Number.NaN),
    String(sum((o) => o.stragglers)),
    String(sum((o) => o.inFlight)),
    String(run.window.length),
    String(run.window.filter(isError).length),
    run.seconds > 0 ? (run.window.length / run.seconds).toFixed(0) : '-',
  ];
  process.stdout.write(`${renderTable(header, [row])}\n`);
}

async function main(): Promise<void> {
  const etcd = findProgram('etcd');
  if (etcd === null) throw new Error('etcd is not on PATH (Debian: apt-get install etcd-server)');
  log(`${changeCount} changes of ${SERVICE_KEY}, ${gapMs} ms apart; load: ${connections} keep-alive connections, GET /, client timeout ${CLIENT_TIMEOUT_SECONDS}s`);
  let killAll: (() => void) | null = null;
  const onSignal = (signal: NodeJS.Signals): void => {
    killAll?.();
    process.stderr.write(`bench/propagation: ${signal}, every process killed\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let cluster: Cluster | null = null;
  let traffic: Traffic | null = null;
  let run: RunSummary;
  let lost = false;
  try {
    cluster = await startCluster(etcd, (kill) => (killAll = kill));
    log(`etcd ${cluster.etcdUrl}, blue ${cluster.addresses.blue}, green ${cluster.addresses.green}, meridian 127.0.0.1:${cluster.proxyPort}`);
    const maxSeconds = Math.ceil((WARMUP_MS + changeCount * (PROPAGATION_TIMEOUT_MS + gapMs)) / 1000) + 30;
    const started = performance.now();
    traffic = startTraffic(cluster.proxyPort, connections, CLIENT_TIMEOUT_SECONDS, maxSeconds);
    const samples = traffic.samples;
    const warm = await waitFor(() => firstFrom(samples, 'blue', started) !== null, started + 10_000);
    if (!warm) throw new Error(`no 2xx from blue under load within 10s; meridian output:\n${cluster.meridian.output()}`);
    await sleep(WARMUP_MS);
    const warmup = within(samples, started, performance.now());
    log(`warm-up: ${warmup.length} requests, ${warmup.filter(isError).length} errors`);
    const result = await runChanges(cluster, samples);
    lost = result.lost;
    run = summarizeRun(samples, result.changes, result.end);
    await logMeridian(cluster, result.changes.at(-1)?.revision ?? 0);
  } finally {
    if (traffic !== null) {
      const { sent } = await traffic.stop();
      log(`load: ${sent} requests sent in all`);
    }
    // On a failed start, startCluster has already stopped what it started.
    await cluster?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  logDetails(run);
  report(run);
  if (lost) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/propagation: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
