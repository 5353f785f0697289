/**
 * The table bench/dns prints: a row per candidate with the median and spread
 * over rounds, ratio rows (Meridian against gdnsd at the same count, and each
 * count against the first), and the notes that say how the figures were made.
 */
import { mib, ratio } from '../lib/table.js';
import type { Unavailable } from './server.js';
import { renderMarkdownTable } from '../lib/table.js';
import { formatMs, formatQps, formatQpsSpread } from './markdown.js';
import { gdnsdName } from './gdnsd.js';
import { meridianName } from './meridian.js';
import { cpuPerQuery, overRounds, type LoadSpec, type Measured, type Running } from './results.js';
import { ECS_REGION, formatSubnet } from './zone.js';

/** Everything the report shows or names. */
export interface ReportInput {
  readonly running: readonly Running[];
  readonly unavailable: readonly Unavailable[];
  /** The loads of every round; the first is the throughput figure. */
  readonly plan: readonly LoadSpec[];
  /** Problems in Meridian's answers, before and after the rounds. */
  readonly problems: readonly string[];
  /** Anything else that makes a figure doubtful (a worker that exited during the rounds). */
  readonly warnings: readonly string[];
  readonly workers: readonly number[];
  readonly rounds: number;
  readonly clients: number;
  readonly maxQps: number | null;
  readonly cores: number;
  /** The goal for Meridian in one process, in answered queries per second. */
  readonly goalQps: number;
}

/** One column: its cell for a candidate, and the figure ratio rows divide (null: no ratio). */
interface Column {
  readonly header: string;
  readonly cell: (r: Running) => string;
  readonly value: ((r: Running) => number | undefined) | null;
}

function columns(plan: readonly LoadSpec[]): Column[] {
  const main = plan[0] as LoadSpec;
  const ecs = plan.find((p) => p.ecs)?.label;
  const percentiles = [...plan].reverse().find((p) => p.tool === 'loadgen' && !p.ecs)?.label;
  const median = (label: string | undefined, pick: (m: Measured) => number | null) => (r: Running) => overRounds(r, label, pick)?.median;
  const ms = (header: string, label: string | undefined, pick: (m: Measured) => number | null): Column => {
    const value = median(label, pick);
    return { header, cell: (r) => formatMs(value(r)), value };
  };
  const qps = (label: string | undefined): Column => ({
    header: `qps (${label ?? '-'})`,
    cell: (r) => formatQpsSpread(overRounds(r, label, (m) => m.qps)),
    value: median(label, (m) => m.qps),
  });
  return [
    qps(main.label),
    ms('avg ms', main.label, (m) => m.avgMs),
    ms('stddev ms', main.label, (m) => m.stddevMs),
    qps(ecs),
    qps(percentiles),
    ms('p50 ms (loadgen)', percentiles, (m) => m.p50Ms),
    ms('p99 ms (loadgen)', percentiles, (m) => m.p99Ms),
    { header: 'lost', cell: (r) => String(r.lost), value: null },
    { header: `CPU us/query (${main.label})`, cell: (r) => cpuPerQuery(r, main.label)?.toFixed(1) ?? '-', value: (r) => cpuPerQuery(r, main.label) },
    { header: 'RSS', cell: (r) => mib(r.rss), value: (r) => r.rss },
  ];
}

/** The pairs compared, numerator first: Meridian against gdnsd at each count, then each count against the first. */
function ratioPairs(workers: readonly number[]): [string, string][] {
  const base = workers[0] as number;
  const rest = workers.slice(1);
  return [
    ...workers.map((n): [string, string] => [meridianName(n), gdnsdName(n)]),
    ...rest.map((n): [string, string] => [meridianName(n), meridianName(base)]),
    ...rest.map((n): [string, string] => [gdnsdName(n), gdnsdName(base)]),
  ];
}

function notes(input: ReportInput): string[] {
  const { plan, running, rounds } = input;
  const main = plan[0] as LoadSpec;
  const out: string[] = [];
  out.push(
    `qps: median (lowest-highest) of ${rounds} round(s) of ${plan.map((p) => `${p.label} (${p.seconds}s, ${p.outstanding} in flight)`).join(', ')} over up to ${input.clients} client sockets` +
      `${input.maxQps === null ? '' : `, at most ${input.maxQps} qps`}; avg, stddev, p50, p99: median of the rounds' figures. Mix 70% api A, 20% www AAAA, 10% NXDOMAIN; ECS runs send ${formatSubnet(ECS_REGION.clientSubnet)} (${ECS_REGION.name}).`,
  );
  out.push(
    `lost: queries unanswered within 1 s, all runs. CPU us/query: CPU time (user + system, from /proc) of every process of the candidate (a Meridian primary and its workers) over every ${main.label} round, per answered query; lower is better. RSS: the largest sum over its processes after a run.`,
  );
  const generator = main.tool === 'dnsperf' ? 'dnsperf -T 1 (one sending and one receiving thread)' : 'loadgen (one Node process)';
  out.push(
    `load generator: ${generator}, unpinned on the same ${input.cores} core(s) as the candidate under load: they share the CPU, so qps with more workers is bounded by what the generator leaves them as much as by the server; CPU us/query is the steadier figure.`,
  );
  for (const r of running) out.push(`${r.server.name}: ${r.server.description}.`);
  const byReason = new Map<string, string[]>();
  for (const u of input.unavailable) byReason.set(u.reason, [...(byReason.get(u.reason) ?? []), u.name]);
  for (const [reason, names] of byReason) out.push(`${names.join(', ')} unavailable: ${reason.split('\n').slice(0, 3).join(' / ')}`);
  const single = running.find((r) => r.server.name === meridianName(1));
  const singleQps = overRounds(single, main.label, (m) => m.qps)?.median;
  const goal = `goal (>= ${input.goalQps} qps for Meridian in one process, ${meridianName(1)})`;
  out.push(singleQps === undefined ? `${goal}: not measured` : `${goal}: ${singleQps >= input.goalQps ? 'met' : 'NOT met'} (median ${formatQps(singleQps)} qps)`);
  const judged = running.filter((r) => r.server.judged).map((r) => r.server.name);
  if (judged.length > 0) {
    out.push(
      input.problems.length === 0
        ? `Meridian's answers (${judged.join(', ')}): as DESIGN.md promises (see stderr)`
        : `Meridian's answers: ${input.problems.length} problem(s): ${input.problems.join('; ')}`,
    );
  }
  for (const w of input.warnings) out.push(`warning: ${w}`);
  return out;
}

/** The markdown table and the notes under it. */
export function renderReport(input: ReportInput): string {
  const cols = columns(input.plan);
  const header = ['candidate', ...cols.map((c) => c.header)];
  const rows: string[][] = input.running.map((r) => [r.server.name, ...cols.map((c) => c.cell(r))]);
  for (const u of input.unavailable) rows.push([`${u.name} (unavailable)`, ...cols.map(() => '-')]);
  const byName = new Map(input.running.map((r) => [r.server.name, r]));
  for (const [a, b] of ratioPairs(input.workers)) {
    const top = byName.get(a);
    const bottom = byName.get(b);
    if (top === undefined || bottom === undefined) continue;
    rows.push([`${a} / ${b}`, ...cols.map((c) => (c.value === null ? '-' : ratio(c.value(top), c.value(bottom))))]);
  }
  return `${renderMarkdownTable(header, rows)}\n\n${notes(input).join('\n')}\n`;
}
