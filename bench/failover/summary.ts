/**
 * What bench/failover reports about a window of recorded traffic: counts,
 * latency percentiles, which regions answered, what the errors were, and how
 * long traffic took to move after an event.
 */
import { isError, type Sample } from '../lib/traffic.js';

/** Requests, errors, latency and regions of one phase. */
export interface WindowSummary {
  readonly requests: number;
  readonly errors: number;
  /** Over every answered request (any status); NaN when none was answered. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** 2xx answers per `x-meridian-region`, most first. */
  readonly regions: readonly (readonly [string, number])[];
  /** Errors per kind (`503 no-healthy-upstream`, `ECONNRESET`, ...), most first. */
  readonly errorKinds: readonly (readonly [string, number])[];
}

/** Samples seen in [from, to). */
export function within(samples: readonly Sample[], from: number, to: number): Sample[] {
  return samples.filter((s) => s.at >= from && s.at < to);
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

function countsOf(keys: readonly string[]): (readonly [string, number])[] {
  const counts = new Map<string, number>();
  for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]);
}

/** The kind of an error sample: status and `x-meridian-error`, or the client-side error code. */
export function errorKind(s: Sample): string {
  return s.status === 0 ? s.error : `${s.status} ${s.error === '' || s.error === '-' ? '(no x-meridian-error)' : s.error}`;
}

/** Summarises the samples of one window. */
export function summarize(samples: readonly Sample[]): WindowSummary {
  const latencies = samples
    .filter((s) => s.status !== 0)
    .map((s) => s.latencyMs)
    .sort((a, b) => a - b);
  const errors = samples.filter(isError);
  return {
    requests: samples.length,
    errors: errors.length,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? Number.NaN,
    regions: countsOf(samples.filter((s) => !isError(s)).map((s) => s.region)),
    errorKinds: countsOf(errors.map(errorKind)),
  };
}

/**
 * Reroute time after a region died at `eventAt`: until the first 2xx from
 * another region after which no request in the samples failed. Null when the
 * samples never get there.
 */
export function rerouteMs(samples: readonly Sample[], eventAt: number, deadRegion: string): number | null {
  const after = samples.filter((s) => s.at >= eventAt);
  const lastError = after.filter(isError).at(-1)?.at ?? eventAt;
  const first = after.find((s) => s.at >= lastError && !isError(s) && s.region !== deadRegion);
  return first === undefined ? null : first.at - eventAt;
}

/** Time from `eventAt` to the first 2xx served by `region`; null when there is none. */
export function firstFromRegionMs(samples: readonly Sample[], eventAt: number, region: string): number | null {
  const first = samples.find((s) => s.at >= eventAt && !isError(s) && s.region === region);
  return first === undefined ? null : first.at - eventAt;
}

/** Time from `eventAt` to the last answer served by endpoint `address`; 0 when none came after it. */
export function lastFromEndpointMs(samples: readonly Sample[], eventAt: number, address: string): number {
  let last = eventAt;
  for (const s of samples) if (s.at >= eventAt && s.endpoint === address) last = s.at;
  return last - eventAt;
}

/** `name count, name count` for a table cell, or `-`. */
export function formatCounts(counts: readonly (readonly [string, number])[]): string {
  return counts.length === 0 ? '-' : counts.map(([k, n]) => `${k} ${n}`).join(', ');
}

/** Milliseconds with one decimal below 10 ms and none above, or `-` for NaN/null. */
export function formatMs(ms: number | null): string {
  if (ms === null || Number.isNaN(ms)) return '-';
  return ms < 10 ? ms.toFixed(1) : ms.toFixed(0);
}
