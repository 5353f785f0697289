/**
 * bench/http: the same keep-alive GET load through each candidate (direct to
 * the upstream, a bare undici proxy, node-http-proxy, Meridian, and nginx and
 * HAProxy when installed), in interleaved rounds, then the memory each holds
 * with 1,000 idle keep-alive client connections. Prints one table with ratios.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs, positiveInt } from '../lib/args.js';
import { holdConnections, runLoad, type LoadOptions, type LoadResult } from '../lib/load.js';
import { findProgram, freePort, treeCpuMs, treeRss, waitForPort, type BenchProcess } from '../lib/process.js';
import { runWrk } from '../lib/wrk.js';
import { mib, renderTable } from '../lib/table.js';
import { candidates, startUpstream, type Candidate } from './candidates.js';

const args = benchArgs(['seconds', 'connections', 'rounds', 'size', 'hold', 'only', 'workers', 'generator']);
const seconds = positiveInt('seconds', args.seconds, 10);
const connections = positiveInt('connections', args.connections, 50);
const rounds = positiveInt('rounds', args.rounds, 3);
const size = positiveInt('size', args.size, 1024);
const hold = positiveInt('hold', args.hold, 1000);
const only = args.only?.split(',').map((s) => s.trim());
const workerCounts = (args.workers ?? '1,2').split(',').map((s) => positiveInt('workers', s.trim(), 1));
/** wrk (a C program, one thread) unless asked otherwise or missing: a Node load generator competes with the proxies for the same cores. */
const generator = args.generator ?? (findProgram('wrk') === null ? 'autocannon' : 'wrk');
if (generator !== 'wrk' && generator !== 'autocannon') {
  process.stderr.write('--generator: expected wrk or autocannon\n');
  process.exit(2);
}
const load = (options: LoadOptions): Promise<LoadResult> => (generator === 'wrk' ? runWrk(options) : runLoad(options));

/** A candidate while the bench runs: its process and every round's figures. */
interface Running {
  readonly candidate: Candidate;
  readonly port: number;
  readonly process: BenchProcess | null;
  readonly rounds: LoadResult[];
  /** CPU microseconds per request served, per round (empty for `direct`, which has no process of its own). */
  readonly cpuPerRequest: number[];
  errors: number;
  rssUnderLoad: number;
  rssHeld: number;
}

/** The median of some figures (the upper one of an even count), undefined when there are none. */
function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

/** `median (min-max)` of per-round figures, with `digits` decimals. */
function spread(values: readonly number[], digits = 0): string {
  const m = median(values);
  if (m === undefined) return '-';
  if (values.length < 2) return m.toFixed(digits);
  return `${m.toFixed(digits)} (${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)})`;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function main(): Promise<void> {
  let selected = candidates(workerCounts);
  if (only !== undefined) {
    const unknown = only.filter((name) => !selected.some((c) => c.name === name));
    if (unknown.length > 0) throw new Error(`--only: unknown candidate(s) ${unknown.join(', ')}; known: ${selected.map((c) => c.name).join(', ')}`);
    selected = selected.filter((c) => only.includes(c.name));
  }
  const dir = mkdtempSync(join(tmpdir(), 'meridian-bench-'));
  // nginx started by root serves files as an unprivileged worker user.
  chmodSync(dir, 0o755);
  const upstreamPort = await freePort();
  const upstream = startUpstream(upstreamPort, size, dir);
  const running: Running[] = [];
  try {
    await waitForPort(upstream, upstreamPort);
    const upstreamAddress = `127.0.0.1:${upstreamPort}`;
    for (const candidate of selected) {
      const port = candidate.start === null ? upstreamPort : await freePort();
      const proc = candidate.start === null ? null : candidate.start(port, upstreamAddress, dir);
      running.push({ candidate, port, process: proc, rounds: [], cpuPerRequest: [], errors: 0, rssUnderLoad: 0, rssHeld: 0 });
      if (proc !== null) await waitForPort(proc, port);
    }
    log(`upstream: ${upstream.name}, ${size}-byte body; ${generator}, ${connections} connections, ${seconds}s x ${rounds} rounds each`);
    for (const r of running) {
      await load({ port: r.port, connections, seconds: 2 });
    }
    for (let round = 1; round <= rounds; round++) {
      for (const r of running) {
        const pid = r.process?.child.pid;
        const cpuBefore = pid === undefined ? 0 : treeCpuMs(pid);
        const result = await load({ port: r.port, connections, seconds });
        const cpu = pid === undefined || result.requests === 0 ? null : ((treeCpuMs(pid) - cpuBefore) * 1000) / result.requests;
        if (cpu !== null) r.cpuPerRequest.push(cpu);
        if (pid !== undefined) r.rssUnderLoad = Math.max(r.rssUnderLoad, treeRss(pid));
        r.errors += result.errors;
        r.rounds.push(result);
        log(`round ${round} ${r.candidate.name}: ${Math.round(result.requestsPerSec)} req/s, p99 ${result.p99Ms} ms, ${cpu === null ? '-' : cpu.toFixed(1)} us/req, ${result.errors} errors`);
      }
    }
    for (const r of running) {
      const pid = r.process?.child.pid;
      if (pid === undefined) continue;
      const release = await holdConnections(r.port, hold);
      await new Promise((resolve) => setTimeout(resolve, 500));
      r.rssHeld = treeRss(pid);
      release();
    }
  } finally {
    for (const r of running) await r.process?.stop();
    await upstream.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  report(running);
}

function report(running: readonly Running[]): void {
  const byName = (name: string): Running | undefined => running.find((r) => r.candidate.name === name);
  const rps = (r: Running | undefined): number[] => r?.rounds.map((x) => x.requestsPerSec) ?? [];
  /** Per round, `of`'s figure over `r`'s (rounds are interleaved, so round i of both saw the same machine), as median (min-max). */
  const perRound = (r: Running, base: Running | undefined, of: (x: Running) => number[], invert: boolean): string => {
    if (base === undefined || base === r) return base === r ? '1.00' : '-';
    const a = of(r);
    const b = of(base);
    const ratios = a.flatMap((v, i) => (b[i] === undefined || v === 0 ? [] : [invert ? (b[i] as number) / v : v / (b[i] as number)]));
    return spread(ratios, 2);
  };
  const bare = byName('bare-undici');
  const header = ['candidate', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'CPU us/req', 'efficiency vs bare', 'RSS load', `RSS ${hold} conns`, 'req/s vs bare', 'vs http-proxy', 'vs haproxy-1t'];
  const rows = running.map((r) => [
    r.candidate.name,
    spread(rps(r)),
    spread(r.rounds.map((x) => x.p50Ms), 2),
    spread(r.rounds.map((x) => x.p99Ms), 2),
    String(r.errors),
    spread(r.cpuPerRequest),
    r.process === null ? '-' : perRound(r, bare, (x) => x.cpuPerRequest, true),
    r.process === null ? '-' : mib(r.rssUnderLoad),
    r.process === null ? '-' : mib(r.rssHeld),
    perRound(r, bare, rps, false),
    perRound(r, byName('node-http-proxy'), rps, false),
    perRound(r, byName('haproxy-1t'), rps, false),
  ]);
  process.stdout.write(`${renderTable(header, rows)}\n`);
  process.stdout.write(`Figures: median (lowest-highest) over ${rounds} interleaved rounds of ${seconds}s; ratios are taken round by round, then the median; errors: summed over all rounds.\n`);
  process.stdout.write('CPU us/req: CPU time of the candidate (all its processes) in a round, per request served; efficiency vs bare: the bare proxy\'s CPU per request over the candidate\'s (1.00 = as cheap); lower CPU, higher efficiency is better.\n');
  process.stdout.write(`load generator: ${generator}; -Nw / -Nt: worker processes / threads of the candidate.\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/http: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
