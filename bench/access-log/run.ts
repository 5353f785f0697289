/**
 * bench/access-log: what the access log costs. One Meridian per mode (access
 * log off, to a file, to stdout that is a pipe read by cat) in front of the same
 * upstream, under the same keep-alive GET load (wrk), in interleaved rounds;
 * CPU microseconds per request from /proc for each, and per round the ratio to
 * `off`. Prints a table: median (lowest-highest).
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, closeSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
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
  /** The `--access-log` value; `stdout` is a pipe read by `cat` (as a container runtime reads it). */
  readonly accessLog: (home: string) => string;
}

const MODES: readonly Mode[] = [
  { name: 'off', accessLog: () => 'off' },
  { name: 'file', accessLog: (home) => join(home, 'access.log') },
  { name: 'stdout|cat', accessLog: () => 'stdout' },
];

/** One mode's figures over the rounds. */
interface Figures {
  readonly mode: Mode;
  readonly rounds: LoadResult[];
  readonly cpuPerRequest: number[];
  /** Bytes the file mode wrote, over all rounds. */
  written: number;
}

/** One mode's Meridian for one round. */
interface Running {
  readonly port: number;
  readonly process: BenchProcess;
  readonly home: string;
  readonly reader: BenchProcess | null;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * With one worker on a machine of two or more cores, Meridian runs on core 1
 * and everything else (this runner, the upstream, the load generator, the
 * pipe's reader: children inherit it) on core 0, so that where the scheduler
 * puts them does not change what a request costs from one process to the next.
 */
const pinned = workers === 1 && availableParallelism() >= 2 && findProgram('taskset') !== null;
if (pinned) execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });

/**
 * A named pipe read by `cat > /dev/null`, as a container runtime reads a
 * process's stdout; returns our descriptor of its writing end. The reader is
 * not Meridian's child, so its CPU is not counted.
 */
function readPipe(dir: string, name: string): { fd: number; reader: BenchProcess } {
  const fifo = join(dir, `${name}.fifo`);
  rmSync(fifo, { force: true });
  execFileSync('mkfifo', [fifo]);
  const reader = startProcess(`${name} reader`, 'sh', ['-c', 'exec cat "$0" > /dev/null', fifo]);
  // Read and write: opening a FIFO this way never waits for the other end.
  return { fd: openSync(fifo, 'r+'), reader };
}

/** A fresh Meridian for one round: stdout on /dev/null, or on a read pipe in stdout mode (the access log's lines, and the process log at warn). */
async function startMeridian(mode: Mode, upstream: string, dir: string, round: number): Promise<Running> {
  const port = await freePort();
  const home = join(dir, `${mode.name.replace(/[^a-z]/g, '-')}-${round}`);
  const conf = writeMeridianHome(home, upstream, { listen: `127.0.0.1:${port}`, workers });
  const pipe = mode.accessLog(home) === 'stdout' ? readPipe(dir, 'stdout') : null;
  const argv = [meridianCli, 'start', '--config', conf, '--log-level', 'warn', '--access-log', mode.accessLog(home)];
  const proc = pinned ? startProcess(mode.name, 'taskset', ['-c', '1', process.execPath, ...argv], { stdout: pipe?.fd ?? 'discard' }) : startProcess(mode.name, process.execPath, argv, { stdout: pipe?.fd ?? 'discard' });
  if (pipe !== null) closeSync(pipe.fd);
  await waitForPort(proc, port);
  return { port, process: proc, home, reader: pipe?.reader ?? null };
}

async function stopMeridian(r: Running): Promise<void> {
  await r.process.stop();
  await r.reader?.stop();
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
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
  const figures: Figures[] = modes.map((mode) => ({ mode, rounds: [], cpuPerRequest: [], written: 0 }));
  const loadBefore = loadavg();
  try {
    await waitForPort(upstream, upstreamPort);
    log(`upstream: ${upstream.name}, ${size}-byte body; ${generator}${rate === null ? '' : ` at ${rate} req/s`}, ${connections} connections, ${seconds}s x ${rounds} rounds each; ${workers} worker(s)${pinned ? ', Meridian on core 1 and the rest on core 0' : ''}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
    for (let round = 1; round <= rounds; round++) {
      // Each round starts fresh processes (one process's luck is not every round's), and a different mode first.
      const order = figures.map((_, i) => figures[(i + round) % figures.length] as Figures);
      for (const f of order) {
        const r = await startMeridian(f.mode, `127.0.0.1:${upstreamPort}`, dir, round);
        try {
          await load({ port: r.port, connections, seconds: 2 });
          const pid = r.process.child.pid as number;
          const before = treeCpuMs(pid);
          const result = await load({ port: r.port, connections, seconds });
          const cpu = result.requests === 0 ? Number.NaN : ((treeCpuMs(pid) - before) * 1000) / result.requests;
          f.cpuPerRequest.push(cpu);
          f.rounds.push(result);
          log(`round ${round} ${f.mode.name}: ${Math.round(result.requestsPerSec)} req/s, ${cpu.toFixed(1)} us/req, ${result.errors} errors`);
        } finally {
          await stopMeridian(r);
        }
        if (f.mode.name === 'file') f.written += fileSize(join(r.home, 'access.log'));
        rmSync(r.home, { recursive: true, force: true });
      }
    }
  } finally {
    await upstream.stop();
  }
  const loadAfter = loadavg();
  const off = figures.find((r) => r.mode.name === 'off');
  const header = ['access log', 'req/s', 'CPU us/req', 'CPU vs off (per round)', 'errors', 'lines written'];
  const rows = figures.map((r) => {
    const ratios = off === undefined || off === r ? [] : r.cpuPerRequest.map((v, i) => (v / (off.cpuPerRequest[i] as number) - 1) * 100);
    const written = r.mode.name === 'file' ? `${Math.round(r.written / 1024 / 1024)} MiB` : '-';
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
  process.stdout.write(`Figures: median (lowest-highest) over ${rounds} interleaved rounds of ${seconds}s, each with fresh processes warmed for 2s; CPU of every Meridian process per request served, from /proc; the ratio to off is taken round by round. Goal: at most +5 % with the log on.\n`);
  process.stdout.write(`load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')} (2 cores are shared; above ~3 the figures are noise).\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/access-log: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
