/**
 * bench/connections: how much memory Meridian holds per idle keep-alive client
 * connection, and the latency of requests spread across all of them. For each
 * `proxy.workers` value: RSS at rest, then N connections opened from K client
 * processes (each on its own 127.0.0.x source address, so that no process and
 * no address runs out of file descriptors or ports), RSS and fds while they
 * idle, a request phase at a bounded total rate, RSS after. Prints one
 * markdown table, one column per workers value.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { benchArgs, positiveInt } from '../lib/args.js';
import { freePort, treePids, waitForPort, type BenchProcess } from '../lib/process.js';
import { mib } from '../lib/table.js';
import { startUpstream } from '../http/candidates.js';
import { ClientProcess } from './clients.js';
import { cpuBetween, KEEP_ALIVE_TIMEOUT, readCounts, readProcesses, startMeridian, totalRss, type BenchMeridian } from './meridian.js';
import { addErrors, SLOW_MS, type RanReply } from './protocol.js';
import { perConnectionBytes, renderReport, type Measurement } from './report.js';

const args = benchArgs(['connections', 'clients', 'workers', 'rate', 'seconds']);
const connections = positiveInt('connections', args.connections, 15_000);
const clients = positiveInt('clients', args.clients, 4);
const workerCounts = (args.workers ?? '1,2').split(',').map((s) => positiveInt('workers', s.trim(), 1));
const rate = positiveInt('rate', args.rate, 5_000);
const seconds = positiveInt('seconds', args.seconds, 10);

/** Connections a client process may hold: well under the per-process open-file limit. */
const MAX_PER_CLIENT = 10_000;
/** Connections each client has connecting (and waiting for the first answer) at once. */
const OPEN_CONCURRENCY = 64;
/** Bound on connecting, and on each answer. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Bound on opening all of a client's connections. */
const OPEN_PHASE_TIMEOUT_MS = 180_000;
/** Pause after the connections are open, and after warming up, before memory is read. */
const SETTLE_MS = 3_000;
/** Requests sent before RSS at rest is read, so that the figure includes a warmed-up request path. */
const WARMUP_REQUESTS = 200;
/** Spare descriptors a Meridian process needs beside its client connections (upstream pool, listeners, IPC). */
const FD_HEADROOM = 1_000;
const UPSTREAM_BODY_BYTES = 1024;
/** How often Meridian's fds are counted during the request phase, for their peak. */
const FD_SAMPLE_MS = 250;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function usage(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

function openFileLimit(): number {
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match === null || match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1]);
}

function checkLimits(): void {
  if (clients > 250) usage('--clients: at most 250 (one source address 127.0.0.2 .. 127.0.0.251 each)');
  if (Math.ceil(connections / clients) > MAX_PER_CLIENT) usage(`--connections: ${connections} over ${clients} clients is more than ${MAX_PER_CLIENT} per client process; raise --clients`);
  const limit = openFileLimit();
  for (const w of workerCounts) {
    const perProcess = Math.ceil(connections / w);
    if (perProcess + FD_HEADROOM > limit) usage(`--workers ${w}: ${perProcess} connections per Meridian process would pass the open-file limit (${limit}); use more workers or fewer connections`);
  }
}

/** Sends WARMUP_REQUESTS over 4 keep-alive connections, then closes them. */
async function warmUp(port: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port, path: '/', agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`warm-up: status ${res.statusCode}`))));
      });
      req.on('timeout', () => req.destroy(new Error('warm-up: timeout')));
      req.on('error', reject);
    });
  const loop = async (): Promise<void> => {
    for (let i = 0; i < WARMUP_REQUESTS / 4; i++) await one();
  };
  try {
    await Promise.all([loop(), loop(), loop(), loop()]);
  } finally {
    agent.destroy();
  }
}

/** Splits `total` into `parts` shares that differ by at most one. */
function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

async function measure(meridian: BenchMeridian, workers: number, fleet: ClientProcess[]): Promise<Measurement> {
  await warmUp(meridian.port);
  await sleep(SETTLE_MS);
  const rest = readProcesses(meridian);
  const restCounts = await readCounts(meridian);
  log(`workers ${workers}: at rest ${mib(totalRss(rest))} (${rest.map((r) => `pid ${r.pid} ${mib(r.rss)}, ${r.fds} fds`).join('; ')})`);

  const counts = shares(connections, clients);
  const opened = await Promise.all(
    fleet.map((c, i) =>
      c.ask({ type: 'open', port: meridian.port, localAddress: `127.0.0.${i + 2}`, count: counts[i] as number, concurrency: OPEN_CONCURRENCY, timeoutMs: REQUEST_TIMEOUT_MS }, 'opened', OPEN_PHASE_TIMEOUT_MS),
    ),
  );
  const held = opened.reduce((sum, o) => sum + o.held, 0);
  const openErrors: Record<string, number> = {};
  for (const o of opened) addErrors(openErrors, o.errors);
  const openMs = Math.max(...opened.map((o) => o.ms));
  log(`workers ${workers}: ${held} of ${connections} connections open in ${(openMs / 1000).toFixed(1)} s`);

  const justOpened = readProcesses(meridian);
  await sleep(SETTLE_MS);
  const idle = readProcesses(meridian);
  log(`workers ${workers}: CPU while idle for ${SETTLE_MS} ms: ${cpuBetween(justOpened, idle)}`);
  const idleCounts = await readCounts(meridian);
  const checked = await Promise.all(fleet.map((c) => c.ask({ type: 'check' }, 'checked', 10_000)));
  const closedIdle = checked.reduce((sum, c) => sum + c.closedByServer, 0);
  log(`workers ${workers}: idle ${mib(totalRss(idle))} (${idle.map((r) => `pid ${r.pid} ${mib(r.rss)}, ${r.fds} fds`).join('; ')}); ${(perConnectionBytes(rest, idle, held) / 1024).toFixed(1)} KiB per connection; Meridian counts ${idleCounts.openConnections}; V8 heap in use ${mib(restCounts.heapUsed)} at rest, ${mib(idleCounts.heapUsed)} idle`);

  const rateShares = shares(rate, clients);
  const peakFds = new Map(idle.map((r) => [r.pid, r.fds]));
  const sampler = setInterval(() => {
    for (const r of readProcesses(meridian)) peakFds.set(r.pid, Math.max(peakFds.get(r.pid) ?? 0, r.fds));
  }, FD_SAMPLE_MS);
  let ran: RanReply[];
  try {
    ran = await Promise.all(
      fleet.map((c, i) => c.ask({ type: 'run', ratePerSec: Math.max(1, rateShares[i] as number), seconds, timeoutMs: REQUEST_TIMEOUT_MS }, 'ran', seconds * 1000 + REQUEST_TIMEOUT_MS + 30_000)),
    );
  } finally {
    clearInterval(sampler);
  }
  const after = readProcesses(meridian);
  const latenciesMs = ran.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
  const runErrors: Record<string, number> = {};
  for (const r of ran) addErrors(runErrors, r.errors);
  log(`workers ${workers}: ${latenciesMs.length} requests answered in ${seconds} s; after ${mib(totalRss(after))}; CPU in the phase: ${cpuBetween(idle, after)}`);
  log(`workers ${workers}: requests of ${SLOW_MS} ms or more, by when they were sent (per 250 ms of the phase): ${slowTimeline(ran.flatMap((r) => r.slowSentAtMs))}`);
  return {
    workers,
    wanted: connections,
    held,
    openErrors,
    openMs,
    restCounts,
    idleCounts,
    rest,
    idle,
    after,
    peakFds: idle.map((r) => ({ ...r, fds: peakFds.get(r.pid) ?? r.fds })),
    closedIdle,
    latenciesMs,
    runErrors,
    runSeconds: seconds,
    connectionsUsed: ran.reduce((sum, r) => sum + r.connectionsUsed, 0),
    openAfter: ran.reduce((sum, r) => sum + r.open, 0),
  };
}

/** The upstream nginx's error log so far (startUpstream keeps it under the run's dir), empty for the Node upstream. */
function upstreamLog(dir: string): string {
  try {
    return readFileSync(join(dir, 'nginx-upstream', 'logs', 'error.log'), 'utf8');
  } catch {
    return '';
  }
}

/** Counts per 250 ms window as `window-start-s:count`, windows without any left out. */
function slowTimeline(sentAtMs: readonly number[]): string {
  if (sentAtMs.length === 0) return 'none';
  const windows = new Map<number, number>();
  for (const at of sentAtMs) {
    const w = Math.floor(at / 250);
    windows.set(w, (windows.get(w) ?? 0) + 1);
  }
  return [...windows.entries()]
    .sort(([a], [b]) => a - b)
    .map(([w, n]) => `${(w / 4).toFixed(2)}s:${n}`)
    .join(' ');
}

/** Stops Meridian (SIGTERM drains its workers), then SIGKILLs any of its processes still alive. */
async function stopMeridian(meridian: BenchMeridian, dir: string): Promise<void> {
  const pid = meridian.process.child.pid;
  const pids = pid === undefined ? [] : treePids(pid);
  await meridian.process.stop();
  for (const p of pids) killIfOurs(p, dir);
}

/** SIGKILLs `pid` if it is still a process of this run: its command line names the run's temp dir (a pid may be reused). */
function killIfOurs(pid: number, dir: string): void {
  try {
    if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) kill(pid);
  } catch {
    // already gone
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function main(): Promise<void> {
  checkLimits();
  const dir = mkdtempSync(join(tmpdir(), 'meridian-connections-bench-'));
  // nginx started by root serves files as an unprivileged worker user.
  chmodSync(dir, 0o755);
  let upstream: BenchProcess | null = null;
  let meridian: BenchMeridian | null = null;
  let fleet: ClientProcess[] = [];
  const onSignal = (signal: NodeJS.Signals): void => {
    for (const c of fleet) c.kill();
    for (const proc of [meridian?.process, upstream]) {
      const pid = proc?.child.pid;
      // Listed just now from live parents: these pids are still ours.
      if (pid !== undefined) for (const p of treePids(pid)) kill(p);
    }
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`bench/connections: ${signal}, every process killed\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const measurements: Measurement[] = [];
  try {
    const upstreamPort = await freePort();
    upstream = startUpstream(upstreamPort, UPSTREAM_BODY_BYTES, dir);
    await waitForPort(upstream, upstreamPort);
    log(`upstream: ${upstream.name}; ${connections} connections from ${clients} client processes (127.0.0.2 .. 127.0.0.${clients + 1}); ${rate} req/s for ${seconds} s; proxy.keepAliveTimeout ${KEEP_ALIVE_TIMEOUT}`);
    for (const workers of workerCounts) {
      meridian = await startMeridian(dir, workers, `127.0.0.1:${upstreamPort}`);
      fleet = Array.from({ length: clients }, (_, i) => new ClientProcess(`client ${i + 1}`));
      try {
        const logged = upstreamLog(dir).length;
        measurements.push(await measure(meridian, workers, fleet));
        const upstreamLines = upstreamLog(dir).slice(logged).trim();
        if (upstreamLines !== '') log(`workers ${workers}: the upstream logged (last 2 KiB):\n${upstreamLines.slice(-2048)}`);
      } finally {
        await Promise.all(fleet.map((c) => c.stop()));
        fleet = [];
        await stopMeridian(meridian, dir);
        const output = meridian.process.output().trim();
        log(output === '' ? `workers ${workers}: Meridian logged nothing at warn or above` : `workers ${workers}: Meridian logged (last 4 KiB):\n${output.slice(-4096)}`);
        meridian = null;
      }
    }
  } finally {
    for (const c of fleet) c.kill();
    if (meridian !== null) await stopMeridian(meridian, dir);
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stdout.write(`${renderReport(measurements)}\n\n`);
  process.stdout.write(
    [
      `Meridian with proxy.keepAliveTimeout ${KEEP_ALIVE_TIMEOUT} (default 5s would close the idle connections); upstream ${UPSTREAM_BODY_BYTES}-byte body.`,
      `KiB per connection: (RSS with the idle connections - RSS at rest) / connections held, all Meridian processes summed; projected: at rest + that x 100,000.`,
      `Request phase: ${rate} req/s in total across the held connections for ${seconds} s; latency from the write of a request to the last byte of its answer.`,
    ].join('\n') + '\n',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/connections: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
