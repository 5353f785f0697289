/**
 * How bench/dns writes its figures (the table itself: bench/lib/table.ts).
 */
import type { Spread } from './results.js';

/** Milliseconds with three decimals (DNS answers on loopback take tenths of a ms), or `-`. */
export function formatMs(ms: number | null | undefined): string {
  return ms === null || ms === undefined || Number.isNaN(ms) ? '-' : ms.toFixed(3);
}

/** A rate as a whole number, or `-`. */
export function formatQps(qps: number | null | undefined): string {
  return qps === null || qps === undefined || Number.isNaN(qps) ? '-' : String(Math.round(qps));
}

/** A rate over rounds as `median (min-max)`, only the median when one round gave it, or `-`. */
export function formatQpsSpread(s: Spread | undefined): string {
  if (s === undefined) return '-';
  return s.count < 2 ? formatQps(s.median) : `${formatQps(s.median)} (${formatQps(s.min)}-${formatQps(s.max)})`;
}
