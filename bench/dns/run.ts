/**
 * bench/dns: GeoDNS throughput and latency of Meridian with 1, 2... workers
 * against gdnsd with as many threads serving the same names statically. All
 * run on loopback; dnsperf (when installed) and bench/dns/loadgen send the same
 * query mix, with and without ECS, in interleaved rounds. Prints one markdown
 * table of medians over rounds with ratio rows.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchArgs, positiveInt } from '../lib/args.js';
import { findProgram, treeCpuMs, treePids, treeRss } from '../lib/process.js';
import { checkAnswers, formatChecks, type CheckedAnswer } from './answers.js';
import { candidateNames, startCandidates } from './candidates.js';
import { runDnsperf, runLoadgen, type DnsLoadOptions, type DnsLoadResult } from './load.js';
import { formatMs, formatQps } from './markdown.js';
import { renderReport } from './report.js';
import type { LoadSpec, Running } from './results.js';
import type { DnsServer, Unavailable } from './server.js';
import { ECS_REGION, QUERY_LINES } from './zone.js';

const args = benchArgs(['seconds', 'rounds', 'ecs-seconds', 'loadgen-seconds', 'outstanding', 'loadgen-outstanding', 'clients', 'max-qps', 'workers', 'wait-seconds', 'only']);
const seconds = positiveInt('seconds', args.seconds, 10);
const rounds = positiveInt('rounds', args.rounds, 3);
const ecsSeconds = positiveInt('ecs-seconds', args['ecs-seconds'], 5);
const loadgenSeconds = positiveInt('loadgen-seconds', args['loadgen-seconds'], 5);
const outstanding = positiveInt('outstanding', args.outstanding, 100);
/** Few, so that loadgen's percentiles show the server's latency more than queueing in the Node client. */
const loadgenOutstanding = positiveInt('loadgen-outstanding', args['loadgen-outstanding'], 10);
const clients = positiveInt('clients', args.clients, 4);
const maxQps = args['max-qps'] === undefined ? null : positiveInt('max-qps', args['max-qps'], 1);
/** Meridian's workers and gdnsd's UDP threads, each count once, smallest first: the ratio rows divide by the first. */
const workers = [...new Set((args.workers ?? '1,2').split(',').map((s) => positiveInt('workers', s.trim(), 1)))].sort((a, b) => a - b);
const waitMs = positiveInt('wait-seconds', args['wait-seconds'], 20) * 1000;
const only = args.only?.split(',').map((s) => s.trim());
const WARMUP_SECONDS = 2;
/** The goal for Meridian on one process, in answered queries per second. */
const GOAL_QPS = 50_000;

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

/** Meridian's log lines at warn or above, of the output kept. */
function warnLines(output: string): string[] {
  return output.split('\n').filter((line) => /^\{"level":"(warn|error|fatal)"/.test(line));
}

/** The pids of a candidate's processes, sorted. */
function pidsOf(server: DnsServer): number[] {
  const pid = server.process.child.pid;
  return pid === undefined ? [] : treePids(pid).sort((a, b) => a - b);
}

function describe(r: DnsLoadResult): string {
  const percentiles = r.p99Ms === null ? '' : `, p50 ${formatMs(r.p50Ms)} ms, p99 ${formatMs(r.p99Ms)} ms`;
  return `${formatQps(r.qps)} qps, avg ${formatMs(r.avgMs)} ms${percentiles}, max ${formatMs(r.maxMs)} ms, ${r.lost} lost, ${r.responseBytes} B/answer; ${r.rcodes}`;
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const dnsperf = findProgram('dnsperf');
  const plan = loadPlan(dnsperf);
  const known = candidateNames(workers);
  if (only !== undefined) {
    const unknown = only.filter((name) => !known.includes(name));
    if (unknown.length > 0) throw new Error(`--only: unknown candidate(s) ${unknown.join(', ')}; known with --workers ${workers.join(',')}: ${known.join(', ')}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'meridian-dns-'));
  const queryFile = join(dir, 'queries.txt');
  writeFileSync(queryFile, `${QUERY_LINES.join('\n')}\n`);
  const servers: DnsServer[] = [];
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
  const warnings: string[] = [];
  try {
    unavailable = await startCandidates({ dir, workers, wanted: (name) => only === undefined || only.includes(name), waitMs, log, servers });
    for (const u of unavailable) log(`${u.name} unavailable: ${u.reason}`);
    if (servers.length === 0) throw new Error('no candidate started');
    if (dnsperf === null) log('dnsperf not installed (apt-get install dnsperf): loadgen measures throughput too');

    const checked = new Map<string, readonly CheckedAnswer[]>();
    for (const s of servers) checked.set(s.name, await checkAnswers(s.port, s.judged));
    log(`answers before load:\n${formatChecks(checked)}`);
    for (const [name, answers] of checked) for (const c of answers) if (c.problem !== null) problems.push(`${name}, ${c.label}: ${c.problem}`);

    for (const server of servers) running.push({ server, results: new Map(), pids: pidsOf(server), lost: 0, rss: 0 });
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
    for (const r of running) {
      const now = pidsOf(r.server);
      if (now.join() !== r.pids.join()) warnings.push(`${r.server.name}: processes ${r.pids.join(',')} at the start of the rounds, ${now.join(',')} at the end: the CPU time of one that exited is missing`);
      if (!r.server.judged) continue;
      const after = await checkAnswers(r.server.port, true);
      for (const c of after) if (c.problem !== null) problems.push(`${r.server.name} after load, ${c.label}: ${c.problem}`);
      const logged = warnLines(r.server.process.output());
      log(`${r.server.name} logged ${logged.length} line(s) at warn or above${logged.length === 0 ? '' : `, the last:\n${logged.slice(-5).join('\n')}`}`);
    }
  } finally {
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  log(`bench/dns took ${Math.round((performance.now() - startedAt) / 1000)} s`);
  process.stdout.write(renderReport({ running, unavailable, plan, problems, warnings, workers, rounds, clients, maxQps, cores: availableParallelism(), goalQps: GOAL_QPS }));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/dns: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
