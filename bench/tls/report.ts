/**
 * The bench/tls table: per candidate and load the median round with its
 * spread, CPU per request, and the ratios the TLS path is judged by, all taken
 * round by round (rounds are interleaved, so round i of every figure saw the
 * same machine).
 */
import { renderMarkdownTable } from '../lib/table.js';

/** The loads, in the order they run and are shown. */
export const LOADS = ['plain-h1', 'tls-h1', 'tls-new', 'h2'] as const;

/** One of LOADS. */
export type LoadName = (typeof LOADS)[number];

/** One candidate under one load in one round. */
export interface Measurement {
  readonly candidate: string;
  readonly load: LoadName;
  readonly round: number;
  readonly requestsPerSec: number;
  /** CPU time of the candidate's processes per request answered, in microseconds; null when none was answered. */
  readonly cpuUsPerRequest: number | null;
  readonly errors: number;
}

/** A ratio between two loads of one candidate, with the goal Meridian has for it. */
interface LoadRatio {
  readonly of: LoadName;
  readonly over: LoadName;
  readonly goal: { readonly text: string; readonly met: (ratio: number) => boolean };
}

const LOAD_RATIOS: readonly LoadRatio[] = [
  { of: 'tls-h1', over: 'plain-h1', goal: { text: '>= 0.80x', met: (r) => r >= 0.8 } },
  { of: 'h2', over: 'tls-h1', goal: { text: '> 1.00x', met: (r) => r > 1 } },
];

/** The median of some figures (the upper one of an even count), undefined when there are none. */
function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

/** `median (min-max)` with `digits` decimals and an optional unit after each figure; `-` for none. */
function spread(values: readonly number[], digits: number, unit = ''): string {
  const m = median(values);
  if (m === undefined) return '-';
  const f = (v: number): string => `${v.toFixed(digits)}${unit}`;
  return values.length < 2 ? f(m) : `${f(m)} (${f(Math.min(...values))}-${f(Math.max(...values))})`;
}

/** Per round, a / b where both exist and b is not 0. */
function perRound(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): number[] {
  const out: number[] = [];
  for (const [round, value] of a) {
    const base = b.get(round);
    if (base !== undefined && base !== 0) out.push(value / base);
  }
  return out;
}

/** Renders the one markdown table of a run: a row per candidate and load, then the load-ratio rows with their goals. */
export function renderReport(measurements: readonly Measurement[], candidates: readonly string[]): string {
  const of = (candidate: string, load: LoadName): Measurement[] => measurements.filter((m) => m.candidate === candidate && m.load === load);
  const rps = (candidate: string, load: LoadName): Map<number, number> => new Map(of(candidate, load).map((m) => [m.round, m.requestsPerSec]));
  const cpu = (candidate: string, load: LoadName): Map<number, number> =>
    new Map(of(candidate, load).flatMap((m) => (m.cpuUsPerRequest === null ? [] : [[m.round, m.cpuUsPerRequest] as const])));
  const base = candidates.includes('haproxy') ? 'haproxy' : null;
  const header = ['candidate', 'load', 'req/s', 'CPU us/req', 'errors', 'req/s meridian/haproxy', 'CPU/req meridian/haproxy', 'goal'];
  const rows: string[][] = [];
  for (const candidate of candidates) {
    for (const load of LOADS) {
      const runs = of(candidate, load);
      const versus = base !== null && candidate === 'meridian';
      rows.push([
        candidate,
        load,
        spread(runs.map((m) => m.requestsPerSec), 0),
        spread([...cpu(candidate, load).values()], 1),
        String(runs.reduce((sum, m) => sum + m.errors, 0)),
        versus ? spread(perRound(rps(candidate, load), rps(base, load)), 2, 'x') : '-',
        versus ? spread(perRound(cpu(candidate, load), cpu(base, load)), 2, 'x') : '-',
        '',
      ]);
    }
  }
  for (const candidate of candidates) {
    for (const ratio of LOAD_RATIOS) {
      const ratios = perRound(rps(candidate, ratio.of), rps(candidate, ratio.over));
      const m = median(ratios);
      const goal = candidate !== 'meridian' ? '-' : m === undefined ? ratio.goal.text : `${ratio.goal.text}: ${ratio.goal.met(m) ? 'met' : 'not met'}`;
      rows.push([
        candidate,
        `${ratio.of} / ${ratio.over}`,
        spread(ratios, 2, 'x'),
        spread(perRound(cpu(candidate, ratio.of), cpu(candidate, ratio.over)), 2, 'x'),
        '',
        '-',
        '-',
        goal,
      ]);
    }
  }
  return renderMarkdownTable(header, rows);
}
