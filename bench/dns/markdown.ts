/**
 * Markdown output of bench/dns: a table whose first column is left-aligned and
 * the others (figures) right-aligned, padded so it reads as plain text too.
 */
import type { Spread } from './results.js';

/** Renders rows as a GitHub-flavoured markdown table. */
export function renderMarkdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${widths.map((w, i) => (i === 0 ? (cells[i] ?? '').padEnd(w) : (cells[i] ?? '').padStart(w))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

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
