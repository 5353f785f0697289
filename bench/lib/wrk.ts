import { execFile } from 'node:child_process';
import type { LoadOptions, LoadResult } from './load.js';

/** Milliseconds of a wrk latency figure (`812.00us`, `1.20ms`, `2.01s`). */
function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (m === null) return Number.NaN;
  const value = Number(m[1]);
  return m[2] === 'us' ? value / 1000 : m[2] === 'ms' ? value : m[2] === 's' ? value * 1000 : value * 60_000;
}

/** Reads wrk's report: requests, req/s, p50/p99 (with --latency), and errors (socket errors, non-2xx/3xx). */
export function parseWrk(out: string): LoadResult {
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const requestsPerSec = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const p50Ms = ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const p99Ms = ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return { requests, requestsPerSec, p50Ms, p99Ms, errors: socketErrors + non2xx };
}

/**
 * Drives keep-alive HTTP/1.1 load at 127.0.0.1:port with wrk: a separate C
 * program, one thread by default, so the load generator takes one core and no
 * more (a Node generator competes with the proxy under test for the same cores).
 */
export function runWrk(options: LoadOptions & { readonly threads?: number }): Promise<LoadResult> {
  const args = [`-t${options.threads ?? 1}`, `-c${options.connections}`, `-d${options.seconds}s`, '--latency', `http://127.0.0.1:${options.port}${options.path ?? '/'}`];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { timeout: (options.seconds + 30) * 1000 }, (err, stdout) => {
      if (err !== null) reject(new Error(`wrk ${args.join(' ')}: ${err.message}`));
      else resolve(parseWrk(stdout));
    });
  });
}
