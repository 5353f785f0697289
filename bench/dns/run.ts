/**
 * bench/dns: GeoDNS throughput and latency of Meridian against gdnsd serving
 * the same names statically. Both run on loopback; dnsperf (when installed)
 * and bench/dns/loadgen send the same query mix, with and without ECS, in
 * interleaved rounds. Prints one markdown table with the ratio Meridian/gdnsd.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchArgs, positiveInt } from '../lib/args.js';
import { findProgram, treeCpuMs, treeRss } from '../lib/process.js';
import { mib, ratio, renderMarkdownTable } from '../lib/table.js';
import { checkAnswers, formatChecks, type CheckedAnswer } from './answers.js';
import { startGdnsd } from './gdnsd.js';
import { runDnsperf, runLoadgen, type DnsLoadOptions, type DnsLoadResult } from './load.js';
import { formatMs, formatQps } from './markdown.js';
import { startMeridian } from './meridian.js';
import type { DnsServer, Unavailable } from './server.js';
import { ECS_REGION, QUERY_LINES, formatSubnet } from './zone.js';

const args = benchArgs(['seconds', 'rounds', 'ecs-seconds', 'loadgen-seconds', 'outstanding', 'loadgen-outstanding', 'clients', 'max-qps', 'gdnsd-threads', 'wait-seconds', 'only']);
const seconds = positiveInt('seconds', args.seconds, 10);
const rounds = positiveInt('rounds', args.rounds, 3);
const ecsSeconds = positiveInt('ecs-seconds', args['ecs-seconds'], 5);
const loadgenSeconds = positiveInt('loadgen-seconds', args['loadgen-seconds'], 5);
const outstanding = positiveInt('outstanding', args.outstanding, 100);
/** Few, so that loadgen's percentiles show the server's latency more than queueing in the Node client. */
const loadgenOutstanding = positiveInt('loadgen-outstanding', args['loadgen-outstanding'], 10);
const clients = positiveInt('clients', args.clients, 4);
const maxQps = args['max-qps'] === undefined ? null : positiveInt('max-qps', args['max-qps'], 1);
const gdnsdThreads = positiveInt('gdnsd-threads', args['gdnsd-threads'], 1);
const waitMs = positiveInt('wait-seconds', args['wait-seconds'], 20) * 1000;
const only = args.only?.split(',').map((s) => s.trim());
const CANDIDATES = ['meridian', 'gdnsd'] as const;
const WARMUP_SECONDS = 2;
/** The goal for Meridian on one process, in answered queries per second. */
const GOAL_QPS = 50_000;

/** One kind of load run in every round. */
interface LoadSpec {
  readonly label: string;
  readonly tool: 'dnsperf' | 'loadgen';
  readonly seconds: number;
  readonly outstanding: number;
  readonly ecs: boolean;
}

/** One measured run: what the load tool saw and the CPU milliseconds the server spent meanwhile. */
interface Measured extends DnsLoadResult {
  readonly serverCpuMs: number;
}

/** A candidate while the bench runs: its server and what each load measured. */
interface Running {
  readonly server: DnsServer;
  /** Per load label, every round. */
  readonly results: Map<string, Measured[]>;
  lost: number;
  rss: number;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function loadPlan(dnsperf: string | null): LoadSpec[] {
  if (dnsperf === null) {
    return [
      { label: 'loadgen', tool: 'loadgen', seconds, outstanding: loadgenOutstanding, ecs: false },
      { label: 'loadgen+ecs', tool: 'loadgen', seconds: ecsSeconds, outstanding: loadgenOutstanding, ecs: true },
    ];
  }
  return [
    { label: 'dnsperf', tool: 'dnsperf', seconds, outstanding, ecs: false },
    { label: 'dnsperf+ecs', tool: 'dnsperf', seconds: ecsSeconds, outstanding, ecs: true },
    { label: 'loadgen', tool: 'loadgen', seconds: loadgenSeconds, outstanding: loadgenOutstanding, ecs: false },
  ];
}

function runLoad(dnsperf: string | null, spec: LoadSpec, port: number, queryFile: string, secondsOverride?: number): Promise<DnsLoadResult> {
  const options: DnsLoadOptions = {
    port,
    queryFile,
    seconds: secondsOverride ?? spec.seconds,
    outstanding: spec.outstanding,
    clients: Math.min(clients, spec.outstanding),
    maxQps,
    ecs: spec.ecs ? ECS_REGION.clientSubnet : null,
  };
  return spec.tool === 'dnsperf' && dnsperf !== null ? runDnsperf(dnsperf, options) : runLoadgen(options);
}

/** Meridian's pino lines at warn (40) or above, of the output kept. */
function warnLines(output: string): string[] {
  return output.split('\n').filter((line) => {
    const m = /^\{"level":(\d+)/.exec(line);
    return m !== null && Number(m[1]) >= 40;
  });
}

function describe(r: DnsLoadResult): string {
  const percentiles = r.p99Ms === null ? '' : `, p50 ${formatMs(r.p50Ms)} ms, p99 ${formatMs(r.p99Ms)} ms`;
  return `${formatQps(r.qps)} qps, avg ${formatMs(r.avgMs)} ms${percentiles}, max ${formatMs(r.maxMs)} ms, ${r.lost} lost, ${r.responseBytes} B/answer; ${r.rcodes}`;
}

async function startCandidates(dir: string): Promise<{ servers: DnsServer[]; unavailable: Unavailable[] }> {
  const servers: DnsServer[] = [];
  const unavailable: Unavailable[] = [];
  const wanted = (name: string): boolean => only === undefined || only.includes(name);
  if (wanted('meridian')) {
    try {
      servers.push(await startMeridian(dir, waitMs));
    } catch (err) {
      unavailable.push({ name: 'meridian', reason: (err as Error).message });
    }
  }
  if (wanted('gdnsd')) {
    const gdnsd = findProgram('gdnsd');
    if (gdnsd === null) unavailable.push({ name: 'gdnsd', reason: 'not installed (apt-get install gdnsd)' });
    else {
      try {
        servers.push(await startGdnsd(gdnsd, dir, gdnsdThreads));
      } catch (err) {
        unavailable.push({ name: 'gdnsd', reason: (err as Error).message });
      }
    }
  }
  return { servers, unavailable };
}

/** The best run (highest qps) of a load, or undefined. */
function best(r: Running | undefined, label: string | undefined): Measured | undefined {
  if (r === undefined || label === undefined) return undefined;
  return (r.results.get(label) ?? []).reduce<Measured | undefined>((a, b) => (a === undefined || b.qps > a.qps ? b : a), undefined);
}

/** Server CPU microseconds per answered query over every round of a load, or undefined. */
function cpuPerQuery(r: Running | undefined, label: string): number | undefined {
  const runs = r?.results.get(label) ?? [];
  const answered = runs.reduce((sum, m) => sum + m.answered, 0);
  return answered === 0 ? undefined : (runs.reduce((sum, m) => sum + m.serverCpuMs, 0) * 1000) / answered;
}

function report(running: readonly Running[], unavailable: readonly Unavailable[], plan: readonly LoadSpec[], problems: readonly string[]): void {
  const main = plan[0] as LoadSpec;
  const ecs = plan.find((p) => p.ecs);
  const percentiles = [...plan].reverse().find((p) => p.tool === 'loadgen' && !p.ecs);
  const header = [
    'candidate',
    `qps (${main.label})`,
    'avg ms',
    'stddev ms',
    `qps (${ecs?.label ?? 'ecs'})`,
    `qps (${percentiles?.label ?? 'loadgen'})`,
    'p50 ms (loadgen)',
    'p99 ms (loadgen)',
    'lost',
    `CPU us/query (${main.label})`,
    'RSS',
  ];
  const rows: string[][] = running.map((r) => {
    const m = best(r, main.label);
    const p = best(r, percentiles?.label);
    return [
      r.server.name,
      formatQps(m?.qps),
      formatMs(m?.avgMs),
      formatMs(m?.stddevMs),
      formatQps(best(r, ecs?.label)?.qps),
      formatQps(p?.qps),
      formatMs(p?.p50Ms),
      formatMs(p?.p99Ms),
      String(r.lost),
      cpuPerQuery(r, main.label)?.toFixed(1) ?? '-',
      mib(r.rss),
    ];
  });
  for (const u of unavailable) rows.push([`${u.name} (unavailable)`, ...header.slice(1).map(() => '-')]);
  const meridian = running.find((r) => r.server.name === 'meridian');
  const gdnsd = running.find((r) => r.server.name === 'gdnsd');
  if (meridian !== undefined && gdnsd !== undefined) {
    const pair = (pick: (r: Running) => number | null | undefined): string => ratio(pick(meridian) ?? undefined, pick(gdnsd) ?? undefined);
    rows.push([
      'meridian / gdnsd',
      pair((r) => best(r, main.label)?.qps),
      pair((r) => best(r, main.label)?.avgMs),
      pair((r) => best(r, main.label)?.stddevMs),
      pair((r) => best(r, ecs?.label)?.qps),
      pair((r) => best(r, percentiles?.label)?.qps),
      pair((r) => best(r, percentiles?.label)?.p50Ms),
      pair((r) => best(r, percentiles?.label)?.p99Ms),
      '-',
      ratio(cpuPerQuery(meridian, main.label), cpuPerQuery(gdnsd, main.label)),
      pair((r) => r.rss),
    ]);
  }
  const out: string[] = [renderMarkdownTable(header, rows), ''];
  out.push(
    `qps and latency: best of ${rounds} rounds of ${plan.map((p) => `${p.label} (${p.seconds}s, ${p.outstanding} in flight)`).join(', ')} over up to ${clients} client sockets` +
      `${maxQps === null ? '' : `, at most ${maxQps} qps`}; mix 70% api A, 20% www AAAA, 10% NXDOMAIN; ECS runs send ${formatSubnet(ECS_REGION.clientSubnet)} (${ECS_REGION.name}).`,
  );
  out.push(
    `lost: queries unanswered within 1 s, all runs. CPU us/query: server CPU time (user + system, from /proc) over every ${main.label} round per answered query; lower is better. RSS: the largest after a run.`,
  );
  if (gdnsd !== undefined) out.push(`gdnsd: ${gdnsdThreads} UDP thread(s), static zone (no geo logic).`);
  for (const u of unavailable) out.push(`${u.name} unavailable: ${u.reason.split('\n').slice(0, 3).join(' / ')}`);
  const meridianQps = best(meridian, main.label)?.qps;
  out.push(
    meridianQps === undefined
      ? `goal (>= ${GOAL_QPS} qps for Meridian in one process): not measured`
      : `goal (>= ${GOAL_QPS} qps for Meridian in one process): ${meridianQps >= GOAL_QPS ? 'met' : 'NOT met'} (${formatQps(meridianQps)} qps)`,
  );
  if (meridian !== undefined) out.push(problems.length === 0 ? "meridian's answers: as DESIGN.md promises (see stderr)" : `meridian's answers: ${problems.length} problem(s): ${problems.join('; ')}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const dnsperf = findProgram('dnsperf');
  const plan = loadPlan(dnsperf);
  if (only !== undefined) {
    const unknown = only.filter((name) => !(CANDIDATES as readonly string[]).includes(name));
    if (unknown.length > 0) throw new Error(`--only: unknown candidate(s) ${unknown.join(', ')}; known: ${CANDIDATES.join(', ')}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'meridian-dns-'));
  const queryFile = join(dir, 'queries.txt');
  writeFileSync(queryFile, `${QUERY_LINES.join('\n')}\n`);
  let servers: DnsServer[] = [];
  const onSignal = (signal: NodeJS.Signals): void => {
    for (const s of servers) s.kill();
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`bench/dns: ${signal}, every process killed\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const running: Running[] = [];
  let unavailable: Unavailable[] = [];
  const problems: string[] = [];
  try {
    const started = await startCandidates(dir);
    servers = started.servers;
    unavailable = started.unavailable;
    for (const u of unavailable) log(`${u.name} unavailable: ${u.reason}`);
    if (servers.length === 0) throw new Error('no candidate started');
    if (dnsperf === null) log('dnsperf not installed (apt-get install dnsperf): loadgen measures throughput too');

    const checked = new Map<string, readonly CheckedAnswer[]>();
    for (const s of servers) checked.set(s.name, await checkAnswers(s.port, s.name === 'meridian'));
    log(`answers before load:\n${formatChecks(checked)}`);
    for (const c of checked.get('meridian') ?? []) if (c.problem !== null) problems.push(`${c.label}: ${c.problem}`);

    for (const server of servers) running.push({ server, results: new Map(), lost: 0, rss: 0 });
    log(`load: ${plan.map((p) => `${p.label} ${p.seconds}s x${p.outstanding}`).join(', ')} per candidate and round, ${rounds} rounds, up to ${clients} client sockets`);
    for (const r of running) {
      const warm = await runLoad(dnsperf, plan[0] as LoadSpec, r.server.port, queryFile, WARMUP_SECONDS);
      log(`warm-up ${r.server.name}: ${describe(warm)}`);
    }
    for (let round = 1; round <= rounds; round++) {
      for (const spec of plan) {
        for (const r of running) {
          const pid = r.server.process.child.pid;
          const cpuBefore = pid === undefined ? 0 : treeCpuMs(pid);
          const result = await runLoad(dnsperf, spec, r.server.port, queryFile);
          const serverCpuMs = pid === undefined ? 0 : treeCpuMs(pid) - cpuBefore;
          if (pid !== undefined) r.rss = Math.max(r.rss, treeRss(pid));
          r.lost += result.lost;
          r.results.set(spec.label, [...(r.results.get(spec.label) ?? []), { ...result, serverCpuMs }]);
          const cpu = result.answered === 0 ? '-' : ((serverCpuMs * 1000) / result.answered).toFixed(1);
          log(`round ${round} ${spec.label} ${r.server.name}: ${describe(result)}; server CPU ${cpu} us/query`);
          const { exitCode, signalCode } = r.server.process.child;
          if (exitCode !== null || signalCode !== null) throw new Error(`${r.server.name} exited (${exitCode ?? signalCode}) during the rounds:\n${r.server.process.output().slice(-2_000)}`);
        }
      }
    }
    const checkedAfter = running.find((r) => r.server.name === 'meridian');
    if (checkedAfter !== undefined) {
      const after = await checkAnswers(checkedAfter.server.port, true);
      for (const c of after) if (c.problem !== null) problems.push(`after load, ${c.label}: ${c.problem}`);
      const warnings = warnLines(checkedAfter.server.process.output());
      log(`meridian logged ${warnings.length} line(s) at warn or above${warnings.length === 0 ? '' : `, the last:\n${warnings.slice(-5).join('\n')}`}`);
    }
  } finally {
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  log(`bench/dns took ${Math.round((performance.now() - startedAt) / 1000)} s`);
  report(running, unavailable, plan, problems);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/dns: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
