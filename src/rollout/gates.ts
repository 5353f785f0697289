import type { RolloutGates } from '../config/rollout-schema.js';

/** One version's outcome over a step, merged over the fleet. */
export interface VersionFigures {
  readonly requests: number;
  /** 5xx answers and Meridian's own errors. */
  readonly errors: number;
  /** null: no request measured. */
  readonly p99Ms: number | null;
}

/** The from-version's figures the to-version is compared with. */
export interface Baseline {
  readonly errorRate: number;
  readonly p99Ms: number | null;
  readonly requests: number;
}

/**
 * The least error rate the relative gate compares against: with a stable
 * version that made no error at all, one error of the canary in a thousand is
 * not yet "twice as bad".
 */
export const ERROR_RATE_FLOOR = 0.001;

/** What the gates say of a step. */
export type Verdict =
  | { readonly verdict: 'pass' }
  /** Not enough requests yet to judge. */
  | { readonly verdict: 'wait' }
  | { readonly verdict: 'fail'; readonly reason: string };

function percent(rate: number): string {
  return `${(rate * 100).toFixed(2)} %`;
}

/**
 * Judges the to-version against the gates once it has `minRequests` in the
 * step. Failure is declared earlier when it is already certain: more errors
 * than the absolute ceiling allows in `minRequests`, whatever comes next.
 */
export function judge(gates: RolloutGates, minRequests: number, to: VersionFigures, baseline: Baseline | null): Verdict {
  const ceilingErrors = gates.maxErrorRate * minRequests;
  if (to.errors > ceilingErrors && to.requests < minRequests) {
    return { verdict: 'fail', reason: `${to.errors} errors in ${to.requests} requests: above the ${percent(gates.maxErrorRate)} ceiling whatever the next ones do` };
  }
  if (to.requests < minRequests) return { verdict: 'wait' };
  const rate = to.errors / to.requests;
  if (rate > gates.maxErrorRate) return { verdict: 'fail', reason: `error rate ${percent(rate)} above the ${percent(gates.maxErrorRate)} ceiling` };
  if (baseline !== null) {
    const allowed = gates.maxErrorRatio * Math.max(baseline.errorRate, ERROR_RATE_FLOOR);
    if (rate > allowed) return { verdict: 'fail', reason: `error rate ${percent(rate)} above ${gates.maxErrorRatio} x the from-version's ${percent(baseline.errorRate)}` };
    if (to.p99Ms !== null && baseline.p99Ms !== null) {
      const limit = Math.max(gates.maxLatencyRatio * baseline.p99Ms, baseline.p99Ms + gates.latencyMargin);
      if (to.p99Ms > limit) return { verdict: 'fail', reason: `p99 ${to.p99Ms.toFixed(1)} ms above ${gates.maxLatencyRatio} x the from-version's ${baseline.p99Ms.toFixed(1)} ms` };
    }
  }
  return { verdict: 'pass' };
}

/** The from-version's figures as a baseline, when it served enough requests in the step to be one. */
export function baselineOf(from: VersionFigures, minRequests: number): Baseline | null {
  if (from.requests < minRequests) return null;
  return { errorRate: from.errors / from.requests, p99Ms: from.p99Ms, requests: from.requests };
}
