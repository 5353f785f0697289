/**
 * The two DNS load tools of bench/dns, each run as a child process and its
 * output read into one `DnsLoadResult`: dnsperf (C, cheap per query, gives
 * throughput, mean and stddev) and bench/dns/loadgen (Node, gives percentiles).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoadgenReport } from './loadgen.js';
import { ecsOptionHex, formatSubnet, type Subnet } from './zone.js';

const node = process.execPath;
const loadgenScript = fileURLToPath(new URL('./loadgen.js', import.meta.url));

/** What one load run measured; fields a tool does not give are null. */
export interface DnsLoadResult {
  readonly sent: number;
  readonly answered: number;
  readonly lost: number;
  readonly qps: number;
  readonly avgMs: number;
  readonly stddevMs: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number;
  readonly responseBytes: number;
  /** `NOERROR 70%, NXDOMAIN 10%`... as the tool reports them. */
  readonly rcodes: string;
}

/** Options of one load run against 127.0.0.1:port. */
export interface DnsLoadOptions {
  readonly port: number;
  /** dnsperf-format query file. */
  readonly queryFile: string;
  readonly seconds: number;
  /** Queries in flight at once. */
  readonly outstanding: number;
  /** dnsperf `-c`, loadgen `--sockets`: distinct client sockets. */
  readonly clients: number;
  /** dnsperf `-Q`; null: as fast as answers come back. */
  readonly maxQps: number | null;
  /** Sent as an ECS option with every query; null: no EDNS. */
  readonly ecs: Subnet | null;
}

/** Seconds a query may take before it counts as lost. */
const QUERY_TIMEOUT_SECONDS = 1;

function run(command: string, args: readonly string[], limitMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: limitMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${command} ${args.join(' ')}: ${err.message}\n${stdout}${stderr}`));
      else resolve(`${stdout}${stderr}`);
    });
  });
}

function field(output: string, pattern: RegExp, what: string): number {
  const m = pattern.exec(output);
  if (m === null) throw new Error(`dnsperf output has no ${what}:\n${output}`);
  return Number(m[1]);
}

/** Runs dnsperf (`-T 1`: one sending and one receiving thread, as the machine has two cores) and reads its statistics. */
export async function runDnsperf(binary: string, options: DnsLoadOptions): Promise<DnsLoadResult> {
  const args = [
    '-s', '127.0.0.1',
    '-p', String(options.port),
    '-d', options.queryFile,
    '-l', String(options.seconds),
    '-c', String(options.clients),
    '-q', String(options.outstanding),
    '-T', '1',
    '-t', String(QUERY_TIMEOUT_SECONDS),
  ];
  if (options.maxQps !== null) args.push('-Q', String(options.maxQps));
  if (options.ecs !== null) args.push('-E', ecsOptionHex(options.ecs));
  const output = await run(binary, args, (options.seconds + QUERY_TIMEOUT_SECONDS + 15) * 1000);
  const sent = field(output, /Queries sent:\s+(\d+)/, 'queries sent');
  const answered = field(output, /Queries completed:\s+(\d+)/, 'queries completed');
  return {
    sent,
    answered,
    lost: field(output, /Queries lost:\s+(\d+)/, 'queries lost'),
    qps: field(output, /Queries per second:\s+([\d.]+)/, 'queries per second'),
    avgMs: field(output, /Average Latency \(s\):\s+([\d.]+)/, 'average latency') * 1000,
    stddevMs: field(output, /Latency StdDev \(s\):\s+([\d.]+)/, 'latency stddev') * 1000,
    p50Ms: null,
    p99Ms: null,
    maxMs: field(output, /Average Latency \(s\):.*max ([\d.]+)/, 'max latency') * 1000,
    responseBytes: answered === 0 ? 0 : field(output, /Average packet size:.*response (\d+)/, 'response size'),
    rcodes: /Response codes:\s+(.*)/.exec(output)?.[1]?.trim() ?? '-',
  };
}

/** Runs bench/dns/loadgen in its own process, so that its CPU is apart from the bench's and the server's. */
export async function runLoadgen(options: DnsLoadOptions): Promise<DnsLoadResult> {
  const args = [
    loadgenScript,
    '--port', String(options.port),
    '--queries', options.queryFile,
    '--seconds', String(options.seconds),
    '--sockets', String(options.clients),
    '--outstanding', String(options.outstanding),
    '--timeout-ms', String(QUERY_TIMEOUT_SECONDS * 1000),
  ];
  if (options.ecs !== null) args.push('--ecs', formatSubnet(options.ecs));
  const output = await run(node, args, (options.seconds + QUERY_TIMEOUT_SECONDS + 15) * 1000);
  const line = output.split('\n').find((l) => l.startsWith('{'));
  if (line === undefined) throw new Error(`loadgen printed no report:\n${output}`);
  const report = JSON.parse(line) as LoadgenReport;
  const total = Object.values(report.rcodes).reduce((a, b) => a + b, 0);
  return {
    sent: report.sent,
    answered: report.answered,
    lost: report.lost,
    qps: report.qps,
    avgMs: report.avgMs,
    stddevMs: report.stddevMs,
    p50Ms: report.p50Ms,
    p99Ms: report.p99Ms,
    maxMs: report.maxMs,
    responseBytes: Math.round(report.avgResponseBytes),
    rcodes:
      Object.entries(report.rcodes)
        .map(([code, n]) => `${code} ${((n * 100) / total).toFixed(2)}%`)
        .join(', ') + (report.stray > 0 ? `; ${report.stray} stray` : '') + (report.truncated > 0 ? `; ${report.truncated} TC` : ''),
  };
}
