/**
 * What bench/dns measured of each candidate, round by round, and the figures
 * the table takes from the rounds: the median and spread of a figure, and CPU
 * time per answered query over every round.
 */
import type { DnsLoadResult } from './load.js';
import type { DnsServer } from './server.js';

/** One kind of load run in every round. */
export interface LoadSpec {
  readonly label: string;
  readonly tool: 'dnsperf' | 'loadgen';
  readonly seconds: number;
  readonly outstanding: number;
  readonly ecs: boolean;
}

/** One measured run: what the load tool saw and the CPU milliseconds the candidate's processes spent meanwhile. */
export interface Measured extends DnsLoadResult {
  readonly serverCpuMs: number;
}

/** A candidate while the bench runs: its server and what each load measured. */
export interface Running {
  readonly server: DnsServer;
  /** Per load label, every round. */
  readonly results: Map<string, Measured[]>;
  /** Its processes when the rounds began: one that exits meanwhile takes its CPU time out of the figures. */
  readonly pids: readonly number[];
  lost: number;
  /** The largest resident size of all its processes after a run, in bytes. */
  rss: number;
}

/** A figure over the rounds: median, lowest, highest, and how many rounds gave it. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly count: number;
}

/** The median and range of `values`; undefined when there are none. */
export function spread(values: readonly number[]): Spread | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number, count: sorted.length };
}

/** One figure of every round of a load (the rounds that lack it left out), over the rounds; undefined when none has it. */
export function overRounds(r: Running | undefined, label: string | undefined, pick: (m: Measured) => number | null): Spread | undefined {
  if (r === undefined || label === undefined) return undefined;
  const values = (r.results.get(label) ?? []).map(pick).filter((v): v is number => v !== null && !Number.isNaN(v));
  return spread(values);
}

/** CPU microseconds of the candidate's processes per answered query over every round of a load, or undefined. */
export function cpuPerQuery(r: Running | undefined, label: string): number | undefined {
  const runs = r?.results.get(label) ?? [];
  const answered = runs.reduce((sum, m) => sum + m.answered, 0);
  return answered === 0 ? undefined : (runs.reduce((sum, m) => sum + m.serverCpuMs, 0) * 1000) / answered;
}
