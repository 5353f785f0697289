/** How bench/dns writes its figures in the markdown table (rendered by bench/lib/table.ts). */

/** Milliseconds with three decimals (DNS answers on loopback take tenths of a ms), or `-`. */
export function formatMs(ms: number | null | undefined): string {
  return ms === null || ms === undefined || Number.isNaN(ms) ? '-' : ms.toFixed(3);
}

/** A rate as a whole number, or `-`. */
export function formatQps(qps: number | null | undefined): string {
  return qps === null || qps === undefined || Number.isNaN(qps) ? '-' : String(Math.round(qps));
}
