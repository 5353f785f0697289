/**
 * bench/tls: what terminating TLS costs Meridian, next to HAProxy with the
 * same certificate and upstream. Per candidate, in interleaved rounds:
 * keep-alive HTTP/1.1 in plaintext and over TLS (wrk), full handshakes per
 * second (h2load, one request per new connection) and HTTP/2 over TLS
 * (h2load). Prints one markdown table with the ratios.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs, positiveInt } from '../lib/args.js';
import { findProgram, freePort, treeCpuMs, treePids, waitForPort, type BenchProcess } from '../lib/process.js';
import { startUpstream } from '../http/candidates.js';
import { makeCertificate } from './certificate.js';
import { tlsCandidates, type CandidatePorts, type TlsCandidate } from './candidates.js';
import { h2Load, killGenerators, newConnectionLoad, wrkLoad, type TlsLoadResult } from './generators.js';
import { LOADS, renderReport, type LoadName, type Measurement } from './report.js';

const args = benchArgs(['seconds', 'rounds', 'connections', 'batch', 'h2-clients', 'h2-streams', 'size']);
const seconds = positiveInt('seconds', args.seconds, 10);
const rounds = positiveInt('rounds', args.rounds, 3);
const connections = positiveInt('connections', args.connections, 50);
const batch = positiveInt('batch', args.batch, 200);
const h2Clients = positiveInt('h2-clients', args['h2-clients'], 16);
const h2Streams = positiveInt('h2-streams', args['h2-streams'], 32);
const size = positiveInt('size', args.size, 1024);
const WARMUP_SECONDS = 2;

/** A candidate while the bench runs. */
interface Running {
  readonly candidate: TlsCandidate;
  readonly ports: CandidatePorts;
  readonly process: BenchProcess;
  /** What each TLS load negotiated, from h2load (the same every round). */
  readonly sessions: Map<LoadName, string>;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Runs `load` against one candidate for `duration` seconds. */
function drive(r: Running, load: LoadName, duration: number): Promise<TlsLoadResult> {
  const https = `https://localhost:${r.ports.tls}/`;
  switch (load) {
    case 'plain-h1':
      return wrkLoad(`http://127.0.0.1:${r.ports.plain}/`, connections, duration);
    case 'tls-h1':
      return wrkLoad(https, connections, duration);
    case 'tls-new':
      return newConnectionLoad(https, batch, duration);
    case 'h2':
      return h2Load(https, h2Clients, h2Streams, duration);
  }
}

/** One measured run: req/s, and the CPU the candidate's processes used per request answered. */
async function measure(r: Running, load: LoadName, round: number): Promise<Measurement> {
  const pid = r.process.child.pid as number;
  const cpuBefore = treeCpuMs(pid);
  const result = await drive(r, load, seconds);
  const cpuMs = treeCpuMs(pid) - cpuBefore;
  if (result.session !== '-') r.sessions.set(load, result.session);
  const cpuUsPerRequest = result.requests === 0 ? null : (cpuMs * 1000) / result.requests;
  log(
    `round ${round} ${r.candidate.name} ${load}: ${Math.round(result.requestsPerSec)} req/s, ${cpuUsPerRequest === null ? '-' : cpuUsPerRequest.toFixed(1)} us/req, ${result.errors} errors`,
  );
  return { candidate: r.candidate.name, load, round, requestsPerSec: result.requestsPerSec, cpuUsPerRequest, errors: result.errors };
}

function fetchText(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** Meridian's own count of failed handshakes and HTTP/2 connections it closed: expected none. */
async function meridianCounters(adminPort: number): Promise<string> {
  try {
    const metrics = await fetchText(adminPort, '/metrics');
    const lines = metrics.split('\n').filter((l) => /^meridian_(tls_handshake_errors_total|http2_connections_closed_total|connections_refused_total)\b/.test(l));
    return lines.length === 0 ? 'no failed handshakes, no HTTP/2 connection closed, no connection refused' : lines.join('; ');
  } catch (err) {
    return `metrics unreadable: ${(err as Error).message}`;
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function loadAverage(): string {
  return loadavg().map((v) => v.toFixed(2)).join(' ');
}

async function main(): Promise<void> {
  for (const program of ['wrk', 'h2load', 'openssl']) {
    if (findProgram(program) === null) throw new Error(`${program} is not on PATH (apt-get install -y wrk nghttp2-client openssl)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'meridian-tls-bench-'));
  // nginx started by root serves files as an unprivileged worker user.
  chmodSync(dir, 0o755);
  let upstream: BenchProcess | null = null;
  const running: Running[] = [];
  const onSignal = (signal: NodeJS.Signals): void => {
    killGenerators();
    for (const proc of [...running.map((r) => r.process), upstream]) {
      const pid = proc?.child.pid;
      // Listed just now from live parents: these pids are still ours.
      if (pid !== undefined) for (const p of treePids(pid)) kill(p);
    }
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`bench/tls: ${signal}, every process killed\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const measurements: Measurement[] = [];
  const loads: number[] = [];
  try {
    const certificate = makeCertificate(dir);
    const upstreamPort = await freePort();
    upstream = startUpstream(upstreamPort, size, dir);
    await waitForPort(upstream, upstreamPort);
    for (const candidate of tlsCandidates()) {
      const ports = { plain: await freePort(), tls: await freePort(), admin: await freePort() };
      const proc = candidate.start(ports, `127.0.0.1:${upstreamPort}`, dir, certificate);
      running.push({ candidate, ports, process: proc, sessions: new Map() });
      await waitForPort(proc, ports.plain);
      await waitForPort(proc, ports.tls);
    }
    log(
      `upstream: ${upstream.name}, ${size}-byte body; candidates: ${running.map((r) => r.candidate.name).join(', ')}; ${seconds}s x ${rounds} rounds per load; ` +
        `wrk -t1 -c${connections}; tls-new: h2load --h1 -n${batch} -c${batch} batches; h2: h2load -t1 -c${h2Clients} -m${h2Streams}; load average ${loadAverage()}`,
    );
    const meridian = running.find((r) => r.candidate.name === 'meridian');
    if (meridian !== undefined) log(`meridian counters after start: ${await meridianCounters(meridian.ports.admin)}`);
    for (const r of running) {
      for (const load of LOADS) await drive(r, load, WARMUP_SECONDS);
    }
    for (let round = 1; round <= rounds; round++) {
      loads.push(loadavg()[0] as number);
      for (const load of LOADS) {
        for (const r of running) measurements.push(await measure(r, load, round));
      }
      log(`round ${round} done; load average ${loadAverage()}`);
    }
    loads.push(loadavg()[0] as number);
    // wrk probes the address with a bare TCP connect before its run, as waitForPort does: each is one ECONNRESET handshake error.
    if (meridian !== undefined) log(`meridian counters at the end (expected: ECONNRESET ${rounds + 2}, from the probes): ${await meridianCounters(meridian.ports.admin)}`);
  } finally {
    killGenerators();
    for (const r of running) {
      const pids = treePids(r.process.child.pid as number);
      await r.process.stop();
      for (const p of pids.slice(1)) kill(p);
      const output = r.process.output().trim();
      log(output === '' ? `${r.candidate.name} logged nothing` : `${r.candidate.name} logged (last 4 KiB):\n${output.slice(-4096)}`);
    }
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  report(measurements, running, loads);
}

function report(measurements: readonly Measurement[], running: readonly Running[], loads: readonly number[]): void {
  process.stdout.write(`${renderReport(measurements, running.map((r) => r.candidate.name))}\n\n`);
  const sessions = running.map((r) => `${r.candidate.name}: ${LOADS.flatMap((l) => (r.sessions.has(l) ? [`${l} ${r.sessions.get(l) ?? ''}`] : [])).join(', ')}`);
  process.stdout.write(
    [
      `Figures: median (lowest-highest) over ${rounds} interleaved rounds of ${seconds}s; ratios are taken round by round, then the median; errors: summed over all rounds.`,
      `CPU us/req: CPU time (user + system) of the candidate's processes in a round per request answered; in the ratio rows, the CPU per request of one load over the other's.`,
      `Loads: plain-h1 wrk -t1 -c${connections} http://127.0.0.1; tls-h1 the same on https://localhost (keep-alive); tls-new h2load --h1 -n${batch} -c${batch} -m1 repeated (one request per new connection: full handshakes/s);`,
      `h2 h2load -t1 -c${h2Clients} -m${h2Streams} (ALPN h2). One P-256 self-signed certificate for all; upstream ${size}-byte body.`,
      `Negotiated (h2load): ${sessions.join('; ')}.`,
      `1-minute load average at the start of each round and at the end: ${loads.map((l) => l.toFixed(2)).join(', ')}.`,
    ].join('\n') + '\n',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/tls: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
