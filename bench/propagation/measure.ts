/**
 * What bench/propagation computes from the recorded traffic: per change, the
 * time from the put to the first answer from the new version, and the answers
 * from the old version that still came after it.
 */
import { isError, type Sample } from '../lib/traffic.js';

/** One put of the service key that flips the split to `colour`. */
export interface Change {
  /** The version the put makes live. */
  readonly colour: string;
  /** The version it replaces. */
  readonly old: string;
  /** `performance.now()` just before the put was sent. */
  readonly putAt: number;
  /** `performance.now()` when etcd acknowledged the put. */
  readonly ackAt: number;
  /** The etcd revision the put created. */
  readonly revision: number;
}

/** How one change reached the traffic. */
export interface ChangeOutcome {
  /** First 2xx from the new version minus `putAt`; null when none came in the window. */
  readonly propagationMs: number | null;
  /**
   * Old-version answers after the first new-version one whose request was
   * written after that first answer arrived: routed on the old table although
   * the new one was already serving.
   */
  readonly stragglers: number;
  /** Old-version answers after the first new-version one whose request was written before it: in flight at the swap. */
  readonly inFlight: number;
}

/** Index of the first sample that arrived at or after `t` (samples are in arrival order). */
export function firstIndexAt(samples: readonly Sample[], t: number): number {
  let lo = 0;
  let hi = samples.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((samples[mid] as Sample).at < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first 2xx from `version` that arrived in [from, to), or null. */
export function firstFrom(samples: readonly Sample[], version: string, from: number, to = Number.POSITIVE_INFINITY): Sample | null {
  for (let i = firstIndexAt(samples, from); i < samples.length; i++) {
    const s = samples[i] as Sample;
    if (s.at >= to) return null;
    if (s.version === version && !isError(s)) return s;
  }
  return null;
}

/** Measures `change` over the answers that arrived from its put until `until` (the next put, or the end of the run). */
export function measureChange(samples: readonly Sample[], change: Change, until: number): ChangeOutcome {
  const first = firstFrom(samples, change.colour, change.putAt, until);
  if (first === null) return { propagationMs: null, stragglers: 0, inFlight: 0 };
  let stragglers = 0;
  let inFlight = 0;
  for (let i = firstIndexAt(samples, first.at); i < samples.length; i++) {
    const s = samples[i] as Sample;
    if (s.at >= until) break;
    if (s.version !== change.old || isError(s)) continue;
    if (s.sentAt > first.at) stragglers++;
    else inFlight++;
  }
  return { propagationMs: first.at - change.putAt, stragglers, inFlight };
}

/** The samples that arrived in [from, to). */
export function within(samples: readonly Sample[], from: number, to: number): readonly Sample[] {
  return samples.slice(firstIndexAt(samples, from), firstIndexAt(samples, to));
}

/** Nearest-rank percentile of ascending `sorted`; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

/** Milliseconds with one decimal below 10 ms and none above, or `-` for NaN/null. */
export function formatMs(ms: number | null): string {
  if (ms === null || Number.isNaN(ms)) return '-';
  return ms < 10 ? ms.toFixed(1) : ms.toFixed(0);
}
