/**
 * The load generators of bench/tls: wrk for keep-alive HTTP/1.1 (plaintext
 * and TLS), h2load for HTTP/2 and for new connections. Each runs as a child
 * process that is tracked, so that a signal can kill the one in flight.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { parseWrk } from '../lib/wrk.js';

/** What one load run measured. */
export interface TlsLoadResult {
  /** Requests answered (wrk: every answer; h2load: 2xx and 3xx). */
  readonly requests: number;
  readonly requestsPerSec: number;
  /** Socket errors, timeouts, failed streams and non-2xx answers. */
  readonly errors: number;
  /** What the connection negotiated, as h2load reports it (`TLSv1.3 TLS_AES_256_GCM_SHA384 X25519 h2`); `-` from wrk. */
  readonly session: string;
}

const running = new Set<ChildProcess>();

/** SIGKILLs every load generator still running (on SIGINT/SIGTERM of the bench). */
export function killGenerators(): void {
  for (const child of running) child.kill('SIGKILL');
}

/** Runs a program to its end and resolves with its stdout; a non-zero exit or `timeoutMs` rejects (the program is killed). */
function runTool(command: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(new Error(`${command}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')}: ${signal === null ? `exit ${code}` : `${signal} (limit ${timeoutMs} ms)`}\n${stdout.slice(-2048)}${stderr}`));
    });
  });
}

/** Keep-alive HTTP/1.1 load with wrk (`-t1`) on `url`, `http://` or `https://`, for `seconds`. */
export async function wrkLoad(url: string, connections: number, seconds: number): Promise<TlsLoadResult> {
  const out = await runTool('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, url], (seconds + 30) * 1000);
  const result = parseWrk(out);
  return { requests: result.requests, requestsPerSec: result.requestsPerSec, errors: result.errors, session: '-' };
}

/** Seconds of an h2load duration (`812.33ms`, `10.00s`, `950us`). */
function seconds(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (m === null) return Number.NaN;
  const value = Number(m[1]);
  return m[2] === 'us' ? value / 1e6 : m[2] === 'ms' ? value / 1000 : value;
}

/** What one h2load run reported. */
export interface H2loadReport {
  readonly elapsedSeconds: number;
  /** Requests answered 2xx or 3xx. */
  readonly succeeded: number;
  /** Failed requests (errored streams and 4xx/5xx answers) and timed-out ones. */
  readonly errors: number;
  /** TLS version, cipher, key exchange and ALPN protocol, space-separated. */
  readonly session: string;
  readonly protocol: string;
}

/** Reads h2load's summary. */
export function parseH2load(out: string): H2loadReport {
  const finished = /finished in ([\d.]+(?:us|ms|s)),/.exec(out);
  const requests = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  if (finished === null || requests === null) throw new Error(`h2load printed no summary:\n${out.slice(-2048)}`);
  const protocol = /Application protocol: (\S+)/.exec(out)?.[1] ?? '?';
  const session = [
    /TLS Protocol: (\S+)/.exec(out)?.[1] ?? '?',
    /Cipher: (\S+)/.exec(out)?.[1] ?? '?',
    /Server Temp Key: (\S+)/.exec(out)?.[1] ?? '?',
    protocol,
  ].join(' ');
  return {
    elapsedSeconds: seconds(finished[1] as string),
    succeeded: Number(requests[1]),
    // h2load counts a 4xx/5xx answer and an errored stream as failed; timeouts apart.
    errors: Number(requests[2]) + Number(requests[4]),
    session,
    protocol,
  };
}

function checkProtocol(report: H2loadReport, expected: string, url: string): void {
  if (report.protocol !== expected) throw new Error(`h2load on ${url} negotiated ${report.protocol}, expected ${expected}`);
}

/** HTTP/2 over TLS (ALPN h2) with h2load: `clients` connections, `streams` requests in flight on each, for `duration` seconds. */
export async function h2Load(url: string, clients: number, streams: number, duration: number): Promise<TlsLoadResult> {
  const out = await runTool('h2load', ['-t1', `-c${clients}`, `-m${streams}`, `-D${duration}`, url], (duration + 30) * 1000);
  const report = parseH2load(out);
  checkProtocol(report, 'h2', url);
  return { requests: report.succeeded, requestsPerSec: report.succeeded / report.elapsedSeconds, errors: report.errors, session: report.session };
}

/**
 * Full TLS handshakes per second: h2load runs one after another for `duration`
 * seconds, each opening `batch` HTTP/1.1 connections at once with one request
 * on each (`-n batch -c batch`). Every connection is a fresh client with no
 * session to resume, so each is a full handshake. The rate is the connections
 * answered over the time h2load itself measured (its start-up between batches
 * left out).
 */
export async function newConnectionLoad(url: string, batch: number, duration: number): Promise<TlsLoadResult> {
  const deadline = performance.now() + duration * 1000;
  let answered = 0;
  let errors = 0;
  let elapsed = 0;
  let session = '-';
  do {
    const report = parseH2load(await runTool('h2load', ['--h1', '-t1', `-n${batch}`, `-c${batch}`, '-m1', url], 60_000));
    checkProtocol(report, 'http/1.1', url);
    answered += report.succeeded;
    // Each connection owes one 2xx: one that never connected is an error too.
    errors += Math.max(report.errors, batch - report.succeeded);
    elapsed += report.elapsedSeconds;
    session = report.session;
  } while (performance.now() < deadline);
  return { requests: answered, requestsPerSec: elapsed === 0 ? 0 : answered / elapsed, errors, session };
}
