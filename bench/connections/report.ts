/**
 * What bench/connections measured for one `proxy.workers` value, and the
 * markdown table that shows every value side by side.
 */
import { mib, renderMarkdownTable } from '../lib/table.js';
import type { ErrorCounts } from './protocol.js';
import { totalRss, type MeridianCounts, type ProcessReading } from './meridian.js';

/** The connections the memory figure is projected to. */
export const PROJECTED_CONNECTIONS = 100_000;

/** Everything measured with one `proxy.workers` value. */
export interface Measurement {
  readonly workers: number;
  readonly wanted: number;
  readonly held: number;
  readonly openErrors: ErrorCounts;
  readonly openMs: number;
  /** Meridian's own figures at rest and with the idle connections. */
  readonly restCounts: MeridianCounts;
  readonly idleCounts: MeridianCounts;
  readonly rest: readonly ProcessReading[];
  readonly idle: readonly ProcessReading[];
  readonly after: readonly ProcessReading[];
  /** The idle readings with the most fds each process had open during the request phase. */
  readonly peakFds: readonly ProcessReading[];
  /** Connections Meridian closed while they were idle (before the request phase). */
  readonly closedIdle: number;
  /** Latency of every answered request of the phase, sorted. */
  readonly latenciesMs: readonly number[];
  readonly runErrors: ErrorCounts;
  readonly runSeconds: number;
  readonly connectionsUsed: number;
  /** Connections still open after the request phase. */
  readonly openAfter: number;
}

/** The value at percentile p (0-100) of sorted samples, by nearest rank; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

/** RSS growth per held connection, in bytes, from readings at rest and with `held` idle connections. */
export function perConnectionBytes(rest: readonly ProcessReading[], idle: readonly ProcessReading[], held: number): number {
  return held === 0 ? Number.NaN : (totalRss(idle) - totalRss(rest)) / held;
}

/** CPU ms all processes used between two readings. */
function cpuMs(before: readonly ProcessReading[], after: readonly ProcessReading[]): number {
  return after.reduce((sum, r) => sum + r.cpuMs, 0) - before.reduce((sum, r) => sum + r.cpuMs, 0);
}

function errorsText(errors: ErrorCounts): string {
  const entries = Object.entries(errors);
  if (entries.length === 0) return '0';
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  return `${total} (${entries.map(([kind, n]) => `${kind} ${n}`).join(', ')})`;
}

function fdsText(readings: readonly ProcessReading[]): string {
  if (readings.length <= 1) return String(readings[0]?.fds ?? '-');
  const [primary, ...workers] = readings;
  return `primary ${primary?.fds}; workers ${workers.map((r) => r.fds).join(' + ')}`;
}

function ms(value: number): string {
  return Number.isNaN(value) ? '-' : value.toFixed(1);
}

/** The table: one row per figure, one column per `proxy.workers` value. */
export function renderReport(measurements: readonly Measurement[]): string {
  const column = (pick: (m: Measurement) => string): string[] => measurements.map(pick);
  const rows: [string, ...string[]][] = [
    ['connections held', ...column((m) => `${m.held} of ${m.wanted}`)],
    ['errors opening', ...column((m) => errorsText(m.openErrors))],
    ['time to open', ...column((m) => `${(m.openMs / 1000).toFixed(1)} s`)],
    ['meridian_open_connections (idle)', ...column((m) => String(m.idleCounts.openConnections))],
    ['fds per Meridian process (idle)', ...column((m) => fdsText(m.idle))],
    ['RSS at rest', ...column((m) => mib(totalRss(m.rest)))],
    ['RSS with the idle connections', ...column((m) => mib(totalRss(m.idle)))],
    ['KiB per connection', ...column((m) => (perConnectionBytes(m.rest, m.idle, m.held) / 1024).toFixed(1))],
    ['of which V8 heap in use', ...column((m) => (m.held === 0 ? '-' : ((m.idleCounts.heapUsed - m.restCounts.heapUsed) / m.held / 1024).toFixed(1)))],
    [`projected RSS at ${PROJECTED_CONNECTIONS.toLocaleString('en-US')} connections`, ...column((m) => mib(totalRss(m.rest) + perConnectionBytes(m.rest, m.idle, m.held) * PROJECTED_CONNECTIONS))],
    ['closed by Meridian while idle', ...column((m) => String(m.closedIdle))],
    ['requests answered', ...column((m) => `${m.latenciesMs.length} (${Math.round(m.latenciesMs.length / m.runSeconds)}/s)`)],
    ['connections that sent', ...column((m) => String(m.connectionsUsed))],
    ['request errors', ...column((m) => errorsText(m.runErrors))],
    ['p50 / p99 / max ms', ...column((m) => `${ms(percentile(m.latenciesMs, 50))} / ${ms(percentile(m.latenciesMs, 99))} / ${ms(percentile(m.latenciesMs, 100))}`)],
    ['Meridian CPU in the request phase', ...column((m) => `${(cpuMs(m.idle, m.after) / m.runSeconds / 10).toFixed(0)}% of a core, ${m.latenciesMs.length === 0 ? '-' : ((cpuMs(m.idle, m.after) * 1000) / m.latenciesMs.length).toFixed(0)} us/req`)],
    ['peak fds per Meridian process (requests)', ...column((m) => fdsText(m.peakFds))],
    ['RSS after the request phase', ...column((m) => mib(totalRss(m.after)))],
    ['connections open after it', ...column((m) => String(m.openAfter))],
  ];
  const header = ['', ...measurements.map((m) => `workers: ${m.workers}`)];
  return renderMarkdownTable(header, rows);
}
