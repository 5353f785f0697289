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
import { mib, ratio, renderTable } from '../lib/table.js';
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

/** A candidate while the bench runs: its process and the best round so far. */
interface Running {
  readonly candidate: Candidate;
  readonly port: number;
  readonly process: BenchProcess | null;
  best: LoadResult | null;
  errors: number;
  /** CPU milliseconds the process spent, and the requests it served, over all rounds. */
  cpuMs: number;
  served: number;
  rssUnderLoad: number;
  rssHeld: number;
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
      running.push({ candidate, port, process: proc, best: null, errors: 0, cpuMs: 0, served: 0, rssUnderLoad: 0, rssHeld: 0 });
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
        if (pid !== undefined) r.cpuMs += treeCpuMs(pid) - cpuBefore;
        r.served += result.requests;
        if (pid !== undefined) r.rssUnderLoad = Math.max(r.rssUnderLoad, treeRss(pid));
        r.errors += result.errors;
        if (r.best === null || result.requestsPerSec > r.best.requestsPerSec) r.best = result;
        log(`round ${round} ${r.candidate.name}: ${Math.round(result.requestsPerSec)} req/s, p99 ${result.p99Ms} ms, ${result.errors} errors`);
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
  const rps = (name: string): number | undefined => running.find((r) => r.candidate.name === name)?.best?.requestsPerSec;
  const cpuPerRequest = (r: Running | undefined): number | undefined => (r === undefined || r.process === null || r.served === 0 ? undefined : (r.cpuMs * 1000) / r.served);
  const cpuOf = (name: string): number | undefined => cpuPerRequest(running.find((r) => r.candidate.name === name));
  const header = ['candidate', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'CPU us/req', 'CPU vs bare', 'RSS load', `RSS ${hold} conns`, 'vs bare', 'vs http-proxy', 'vs haproxy'];
  const rows = running.map((r) => {
    const best = r.best as LoadResult;
    return [
      r.candidate.name,
      String(Math.round(best.requestsPerSec)),
      String(best.p50Ms),
      String(best.p99Ms),
      String(r.errors),
      cpuPerRequest(r)?.toFixed(0) ?? '-',
      ratio(cpuPerRequest(r), cpuOf('bare-undici')),
      r.process === null ? '-' : mib(r.rssUnderLoad),
      r.process === null ? '-' : mib(r.rssHeld),
      ratio(best.requestsPerSec, rps('bare-undici')),
      ratio(best.requestsPerSec, rps('node-http-proxy')),
      ratio(best.requestsPerSec, rps('haproxy-1t')),
    ];
  });
  process.stdout.write(`${renderTable(header, rows)}\n`);
  process.stdout.write(`req/s and latency: best of ${rounds} rounds of ${seconds}s; errors: summed over all rounds.\n`);
  process.stdout.write('CPU us/req: CPU time of the proxy process (all its processes) over all rounds, per request served; lower is better.\n');
  process.stdout.write(`load generator: ${generator}; -Nw / -Nt: worker processes / threads of the candidate.\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/http: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
