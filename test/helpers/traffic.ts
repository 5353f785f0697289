import { Agent } from 'node:http';
import { send } from './client.js';

/** One request of a traffic loop as the client saw it. */
export interface TrafficSample {
  /** Date.now() when the request was sent. */
  sentAt: number;
  /** Date.now() when the answer (or the failure) arrived. */
  at: number;
  /** `x-meridian-version` of the answer; '' when absent. */
  version: string;
  status: number;
  /** `x-meridian-region` of the answer (debug headers on); '' when absent. */
  region: string;
  /** `x-meridian-error` of the answer; '' when absent. */
  error: string;
  /** The client-side failure (connection error, timeout), if any. */
  failure: string | null;
  /** The failure's error code (`ECONNRESET`, `ECONNREFUSED`, ...); '' when none. */
  code: string;
  /** The answer's `connection` header; '' when absent. */
  connection: string;
}

/** A running traffic loop: `workers` clients each sending GETs back to back over keep-alive. */
export interface Traffic {
  readonly samples: TrafficSample[];
  /** Samples that are not a 2xx answer. */
  failures(): TrafficSample[];
  /** Stops the loop and resolves once every worker has finished its request in flight. */
  stop(): Promise<TrafficSample[]>;
}

/** Starts GET traffic at 127.0.0.1:port; bounded by stop() (call it in the test). */
export function startTraffic(port: number, options: { workers?: number; path?: string; timeoutMs?: number; headers?: Record<string, string> } = {}): Traffic {
  const agent = new Agent({ keepAlive: true, maxSockets: options.workers ?? 4 });
  const samples: TrafficSample[] = [];
  let running = true;
  const worker = async (): Promise<void> => {
    while (running) {
      const sentAt = Date.now();
      try {
        const res = await send(port, { path: options.path ?? '/', agent, timeoutMs: options.timeoutMs ?? 5_000, headers: options.headers ?? {} });
        const header = (name: string): string => String(res.headers[name] ?? '');
        samples.push({ sentAt, at: Date.now(), status: res.status, region: header('x-meridian-region'), version: header('x-meridian-version'), error: header('x-meridian-error'), failure: null, code: '', connection: header('connection') });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        samples.push({ sentAt, at: Date.now(), status: 0, region: '', version: '', error: '', failure: (err as Error).message, code, connection: '' });
      }
    }
  };
  const done = Promise.all(Array.from({ length: options.workers ?? 4 }, worker));
  return {
    samples,
    failures: () => samples.filter((s) => s.status < 200 || s.status > 299),
    async stop() {
      running = false;
      await done;
      agent.destroy();
      return samples;
    },
  };
}
