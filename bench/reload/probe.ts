/**
 * An open-loop latency probe: requests are sent on a fixed schedule, whatever
 * the answers do, and each latency is counted from the moment the request was
 * due. A stalled proxy therefore shows as the whole stall, not as one slow
 * request (the coordinated-omission trap of closed-loop load generators).
 */
import { Agent, request } from 'node:http';

/** One probe request: when it was due and when its answer completed (ms, performance.now()). */
export interface ProbeSample {
  readonly due: number;
  readonly done: number;
  readonly ok: boolean;
}

/** A running probe. */
export interface Probe {
  /** Samples completed so far. */
  readonly samples: ProbeSample[];
  stop(): Promise<void>;
}

/** Starts sending GET / to 127.0.0.1:port every `intervalMs`. */
export function startProbe(port: number, intervalMs: number): Probe {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const samples: ProbeSample[] = [];
  const pending = new Set<Promise<void>>();
  const start = performance.now();
  let n = 0;
  let stopped = false;
  const send = (due: number): void => {
    const done = new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          samples.push({ due, done: performance.now(), ok: res.statusCode === 200 });
          resolve();
        });
      });
      req.on('error', () => {
        samples.push({ due, done: performance.now(), ok: false });
        resolve();
      });
      req.end();
    });
    pending.add(done);
    void done.then(() => pending.delete(done));
  };
  const tick = (): void => {
    if (stopped) return;
    // Catch up on every request that fell due, even if this timer fired late.
    while (start + n * intervalMs <= performance.now()) send(start + n++ * intervalMs);
    setTimeout(tick, Math.max(0, start + n * intervalMs - performance.now()));
  };
  tick();
  return {
    samples,
    async stop() {
      stopped = true;
      await Promise.all(pending);
      agent.destroy();
    },
  };
}

/** The q-quantile (0..1) of latencies of samples due within [from, to), in ms; NaN when none. */
export function quantile(samples: readonly ProbeSample[], from: number, to: number, q: number): number {
  const latencies = samples.filter((s) => s.due >= from && s.due < to).map((s) => s.done - s.due).sort((a, b) => a - b);
  if (latencies.length === 0) return Number.NaN;
  return latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] as number;
}
