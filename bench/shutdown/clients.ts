/**
 * The traffic of bench/shutdown: keep-alive clients sending back to back, and
 * a watcher that polls readyz like a load balancer's health check and tells
 * the clients to stop once it sees the node go unready.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** What the clients of one run saw. */
export interface ClientTally {
  requests: number;
  /** 2xx answers whose body arrived whole. */
  ok: number;
  /** A connection cut under a request: ECONNRESET (including "socket hang up") or EPIPE. */
  resets: number;
  /** ECONNREFUSED: the listener was gone. */
  refused: number;
  /** An answer whose body was cut short. */
  incomplete: number;
  /** Non-2xx answers. */
  non2xx: number;
  /** Any other failure, by code or message. */
  other: Map<string, number>;
  /** Answers that carried `connection: close`. */
  closing: number;
}

/** Running clients: their tally so far, and how to stop them. */
export interface Clients {
  readonly tally: ClientTally;
  /** Stops sending; resolves once every request in flight has ended. */
  stop(): Promise<void>;
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE']);

function count(tally: ClientTally, err: Error, answered: boolean): void {
  const code = (err as NodeJS.ErrnoException).code ?? err.message;
  if (answered) tally.incomplete++;
  else if (RESET_CODES.has(code)) tally.resets++;
  else if (code === 'ECONNREFUSED') tally.refused++;
  else tally.other.set(code, (tally.other.get(code) ?? 0) + 1);
}

/** One GET on `agent`; resolves when it has been counted, never rejects. */
function once(port: number, agent: Agent, tally: ClientTally): Promise<void> {
  return new Promise((resolve) => {
    tally.requests++;
    let answered = false;
    let counted = false;
    const fail = (err: Error): void => {
      if (counted) return;
      counted = true;
      count(tally, err, answered);
      resolve();
    };
    const req = request({ host: '127.0.0.1', port, path: '/', agent, timeout: 5_000 }, (res) => {
      answered = true;
      const expected = Number(res.headers['content-length'] ?? -1);
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('error', fail);
      res.on('end', () => {
        if (counted) return;
        counted = true;
        const status = res.statusCode ?? 0;
        if (res.headers.connection === 'close') tally.closing++;
        if (!res.complete || (expected >= 0 && bytes !== expected)) tally.incomplete++;
        else if (status >= 200 && status < 300) tally.ok++;
        else tally.non2xx++;
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('client-timeout')));
    req.on('error', fail);
    req.end();
  });
}

/** Starts `count` clients, each on its own keep-alive connection, sending GET / back to back. */
export function startClients(port: number, clients: number): Clients {
  const tally: ClientTally = { requests: 0, ok: 0, resets: 0, refused: 0, incomplete: 0, non2xx: 0, other: new Map(), closing: 0 };
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    while (running) await once(port, agent, tally);
    agent.destroy();
  });
  return {
    tally,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Whether readyz answers 200; a refused or failed check counts as not ready, as it does for a load balancer. */
function ready(adminPort: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: adminPort, path: '/readyz', timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Polls readyz every `everyMs` until it fails; resolves with `performance.now()` of that check. */
export async function watchReadiness(adminPort: number, everyMs: number, signal: AbortSignal): Promise<number | null> {
  while (!signal.aborted) {
    const startedAt = performance.now();
    if (!(await ready(adminPort))) return performance.now();
    const left = everyMs - (performance.now() - startedAt);
    if (left > 0) await sleep(left);
  }
  return null;
}
