import { Agent, request } from 'node:http';
import autocannon from 'autocannon';

/** What one autocannon run measured. */
export interface LoadResult {
  readonly requestsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Connection errors, timeouts and non-2xx answers. */
  readonly errors: number;
  readonly requests: number;
}

/** Options of one load run. */
export interface LoadOptions {
  readonly port: number;
  readonly connections: number;
  readonly seconds: number;
  readonly path?: string;
}

/** Drives keep-alive HTTP/1.1 load at 127.0.0.1:port with autocannon. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const result = await autocannon({
    url: `http://127.0.0.1:${options.port}${options.path ?? '/'}`,
    connections: options.connections,
    duration: options.seconds,
    pipelining: 1,
  });
  return {
    requestsPerSec: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    requests: result.requests.total,
  };
}

/**
 * Opens `count` keep-alive client connections to 127.0.0.1:port, sends one
 * request on each and leaves them open. Returns a function that closes them all.
 */
export async function holdConnections(port: number, count: number): Promise<() => void> {
  const agent = new Agent({ keepAlive: true, maxSockets: count, maxFreeSockets: count, keepAliveMsecs: 60_000 });
  // All at once, so that no request finds a free socket to reuse: one connection each.
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
            res.resume();
            res.on('end', resolve);
          });
          req.on('error', reject);
          req.end();
        }),
    ),
  );
  const open = Object.values(agent.freeSockets).reduce((sum, list) => sum + (list?.length ?? 0), 0);
  if (open < count) throw new Error(`only ${open} of ${count} keep-alive connections stayed open`);
  return () => agent.destroy();
}
