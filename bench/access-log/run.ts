/**
 * bench/access-log: what the access log costs. One Meridian per mode (access
 * log off, to a file, to stdout that is /dev/null) in front of the same
 * upstream, under the same keep-alive GET load (wrk), in interleaved rounds;
 * CPU microseconds per request from /proc for each, and per round the ratio to
 * `off`. Prints a table: median (lowest-highest).
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs, positiveInt } from '../lib/args.js';
import { runLoad, type LoadOptions, type LoadResult } from '../lib/load.js';
import { findProgram, freePort, startProcess, treeCpuMs, waitForPort, type BenchProcess } from '../lib/process.js';
import { writeMeridianHome } from '../lib/routes.js';
import { renderTable } from '../lib/table.js';
import { runWrk } from '../lib/wrk.js';
import { startUpstream } from '../http/candidates.js';

const args = benchArgs(['seconds', 'connections', 'rounds', 'size', 'workers', 'only', 'rate']);
const seconds = positiveInt('seconds', args.seconds, 5);
const connections = positiveInt('connections', args.connections, 50);
const rounds = positiveInt('rounds', args.rounds, 5);
const size = positiveInt('size', args.size, 1024);
const workers = positiveInt('workers', args.workers, 1);
/** Requests per second in all, held steady by h2load; absent: as fast as Meridian answers (wrk). */
const rate = args.rate === undefined ? null : positiveInt('rate', args.rate, 1);
const generator = rate !== null ? 'h2load' : findProgram('wrk') === null ? 'autocannon' : 'wrk';
if (rate !== null && findProgram('h2load') === null) {
  process.stderr.write('--rate needs h2load (nghttp2-client)\n');
  process.exit(2);
}
const load = (options: LoadOptions): Promise<LoadResult> => (rate !== null ? runAtRate(options, rate) : generator === 'wrk' ? runWrk(options) : runLoad(options));

/**
 * HTTP/1.1 keep-alive load at a fixed rate with h2load (`--rps` per
 * connection): CPU per request is then compared at the same throughput, not
 * at saturation, where a costlier mode also serves fewer requests per loop turn.
 */
function runAtRate(options: LoadOptions, total: number): Promise<LoadResult> {
  const perConnection = Math.max(1, Math.round(total / options.connections));
  const argv = ['--h1', '-c', String(options.connections), '--rps', String(perConnection), '-D', String(options.seconds), `http://127.0.0.1:${options.port}/`];
  return new Promise((resolve, reject) => {
    execFile('h2load', argv, { timeout: (options.seconds + 30) * 1000 }, (err, stdout) => {
      if (err !== null) {
        reject(new Error(`h2load ${argv.join(' ')}: ${err.message}`));
        return;
      }
      const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(stdout);
      const requests = Number(done?.[2] ?? 0);
      resolve({ requests, requestsPerSec: Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(stdout)?.[1] ?? 0), p50Ms: Number.NaN, p99Ms: Number.NaN, errors: Number(done?.[1] ?? 0) - requests });
    });
  });
}
const meridianCli = new URL('../../dist/cli.js', import.meta.url).pathname;

/** A way to run the access log. */
interface Mode {
  readonly name: string;
  /** The `--access-log` value; `stdout` goes to /dev/null. */
  readonly accessLog: (home: string) => string;
}

const MODES: readonly Mode[] = [
  { name: 'off', accessLog: () => 'off' },
  { name: 'file', accessLog: (home) => join(home, 'access.log') },
  { name: 'stdout>/dev/null', accessLog: () => 'stdout' },
];

interface Running {
  readonly mode: Mode;
  readonly port: number;
  readonly process: BenchProcess;
  readonly home: string;
  readonly rounds: LoadResult[];
  readonly cpuPerRequest: number[];
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Meridian with its stdout on /dev/null (the access log's, in stdout mode, and the process log at warn). */
function startMeridian(mode: Mode, port: number, upstream: string, dir: string): { process: BenchProcess; home: string } {
  const home = join(dir, mode.name.replace(/[^a-z]/g, '-'));
  const conf = writeMeridianHome(home, upstream, { listen: `127.0.0.1:${port}`, workers });
  // stdout to /dev/null: the stdout mode measures writing the lines, not a reader of them.
  const proc = startProcess(mode.name, process.execPath, [meridianCli, 'start', '--config', conf, '--log-level', 'warn', '--access-log', mode.accessLog(home)], { stdout: 'discard' });
  return { process: proc, home };
}

function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
}

function spread(values: readonly number[], digits: number): string {
  if (values.length === 0) return '-';
  return `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)})`;
}

async function main(): Promise<void> {
  const only = args.only?.split(',').map((s) => s.trim());
  const modes = only === undefined ? MODES : MODES.filter((m) => only.includes(m.name));
  const dir = mkdtempSync(join(tmpdir(), 'meridian-bench-access-'));
  // nginx started by root serves files as an unprivileged worker user.
  chmodSync(dir, 0o755);
  const upstreamPort = await freePort();
  const upstream = startUpstream(upstreamPort, size, dir);
  const running: Running[] = [];
  const loadBefore = loadavg();
  try {
    await waitForPort(upstream, upstreamPort);
    for (const mode of modes) {
      const port = await freePort();
      const { process: proc, home } = startMeridian(mode, port, `127.0.0.1:${upstreamPort}`, dir);
      running.push({ mode, port, process: proc, home, rounds: [], cpuPerRequest: [] });
      await waitForPort(proc, port);
    }
    log(`upstream: ${upstream.name}, ${size}-byte body; ${generator}${rate === null ? '' : ` at ${rate} req/s`}, ${connections} connections, ${seconds}s x ${rounds} rounds each; ${workers} worker(s); load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
    for (const r of running) await load({ port: r.port, connections, seconds: 2 });
    for (let round = 1; round <= rounds; round++) {
      // Each round starts with a different mode, so no mode always follows the same one.
      const order = running.map((_, i) => running[(i + round) % running.length] as Running);
      for (const r of order) {
        const pid = r.process.child.pid as number;
        const before = treeCpuMs(pid);
        const result = await load({ port: r.port, connections, seconds });
        const cpu = result.requests === 0 ? Number.NaN : ((treeCpuMs(pid) - before) * 1000) / result.requests;
        r.cpuPerRequest.push(cpu);
        r.rounds.push(result);
        log(`round ${round} ${r.mode.name}: ${Math.round(result.requestsPerSec)} req/s, ${cpu.toFixed(1)} us/req, ${result.errors} errors`);
      }
    }
  } finally {
    for (const r of running) await r.process.stop();
    await upstream.stop();
  }
  const loadAfter = loadavg();
  const off = running.find((r) => r.mode.name === 'off');
  const header = ['access log', 'req/s', 'CPU us/req', 'CPU vs off (per round)', 'errors', 'lines written'];
  const rows = running.map((r) => {
    const ratios = off === undefined || off === r ? [] : r.cpuPerRequest.map((v, i) => (v / (off.cpuPerRequest[i] as number) - 1) * 100);
    let written = '-';
    if (r.mode.name === 'file') {
      try {
        written = `${Math.round(statSync(join(r.home, 'access.log')).size / 1024 / 1024)} MiB`;
      } catch {
        written = 'none';
      }
    }
    return [
      r.mode.name,
      spread(r.rounds.map((x) => x.requestsPerSec), 0),
      spread(r.cpuPerRequest, 1),
      ratios.length === 0 ? (off === r ? 'baseline' : '-') : `${spread(ratios, 1)} %`,
      String(r.rounds.reduce((sum, x) => sum + x.errors, 0)),
      written,
    ];
  });
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${renderTable(header, rows)}\n`);
  process.stdout.write(`Load: ${rate === null ? `${generator}, as fast as each answers (saturated)` : `h2load at ${rate} req/s for every mode`}, ${connections} connections.\n`);
  process.stdout.write(`Figures: median (lowest-highest) over ${rounds} interleaved rounds of ${seconds}s; CPU of every Meridian process per request served, from /proc; the ratio to off is taken round by round. Goal: at most +5 % with the log on.\n`);
  process.stdout.write(`load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')} (2 cores are shared; above ~3 the figures are noise).\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/access-log: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
