/**
 * Continuous keep-alive load with autocannon that records every response and
 * every request error with the time it was seen, and the Meridian debug headers
 * that say who served it, so that phases and the events inside them can be
 * measured afterwards from one unbroken stream of traffic.
 */
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';

/** One answered request, or one request that got no answer. */
export interface Sample {
  /** `performance.now()` when the response (or the error) arrived. */
  readonly at: number;
  /**
   * `performance.now()` when autocannon wrote the request: the arrival minus
   * autocannon's response time, which it measures from just before the write.
   * NaN when no response came.
   */
  readonly sentAt: number;
  /** HTTP status; 0 when no response came (connection error, client timeout). */
  readonly status: number;
  /** autocannon's response time in ms; NaN when no response came. */
  readonly latencyMs: number;
  /** `x-meridian-region`, or `-` when absent. */
  readonly region: string;
  /** `x-meridian-endpoint` (`host:port`), or `-` when absent. */
  readonly endpoint: string;
  /** `x-meridian-version`, or `-` when absent. */
  readonly version: string;
  /** `x-meridian-error` of a non-2xx answer, the error code when no answer came, else empty. */
  readonly error: string;
}

/** A running load: its samples so far, and how to end it. */
export interface Traffic {
  readonly samples: readonly Sample[];
  /** Stops the load; resolves with what autocannon sent and how many it saw answered or failed. */
  stop(): Promise<{ sent: number; seen: number }>;
}

/** Whether a sample counts as an error: non-2xx, connection error or timeout. */
export function isError(s: Sample): boolean {
  return s.status < 200 || s.status >= 300;
}

/** What onResponse saw, waiting for the `response` event that carries the response time. */
interface Pending {
  readonly status: number;
  readonly region: string;
  readonly endpoint: string;
  readonly version: string;
  readonly error: string;
}

/** The sample fields of a request that got no answer. */
const UNANSWERED = { sentAt: Number.NaN, status: 0, latencyMs: Number.NaN, region: '-', endpoint: '-', version: '-' } as const;

function header(headers: Record<string, unknown> | undefined, name: string): string {
  if (headers === undefined) return '-';
  let value = headers[name];
  if (value === undefined) {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : headers[key];
  }
  if (Array.isArray(value)) value = value[0];
  return typeof value === 'string' ? value : '-';
}

function errorCode(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
    return err.message === 'request timed out' ? 'client-timeout' : err.message;
  }
  return String(err);
}

/**
 * Starts GET / load on 127.0.0.1:port with `connections` keep-alive connections
 * and a client timeout of `timeoutSeconds`; it runs until `stop()` (or `maxSeconds`).
 */
export function startTraffic(port: number, connections: number, timeoutSeconds: number, maxSeconds: number): Traffic {
  const samples: Sample[] = [];
  // autocannon calls onResponse and then, synchronously on the same client,
  // emits `response` with the response time: the two halves of one sample.
  let pending: Pending | null = null;
  let finished: ((result: autocannon.Result) => void) | null = null;
  let failed: ((err: Error) => void) | null = null;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finished = resolve;
    failed = reject;
  });
  const instance = autocannon(
    {
      url: `http://127.0.0.1:${port}/`,
      connections,
      pipelining: 1,
      duration: maxSeconds,
      timeout: timeoutSeconds,
      requests: [
        {
          method: 'GET',
          path: '/',
          onResponse: (status, _body, _context, headers) => {
            const raw = headers as Record<string, unknown> | undefined;
            const ok = status >= 200 && status < 300;
            pending = {
              status,
              region: header(raw, 'x-meridian-region'),
              endpoint: header(raw, 'x-meridian-endpoint'),
              version: header(raw, 'x-meridian-version'),
              error: ok ? '' : header(raw, 'x-meridian-error'),
            };
          },
        },
      ],
    },
    (err: unknown, result) => {
      if (err !== null && err !== undefined) failed?.(err instanceof Error ? err : new Error(String(err)));
      else finished?.(result);
    },
  );
  instance.on('response', (_client, statusCode, _bytes, responseTime) => {
    const at = performance.now();
    const p: Pending = pending ?? { status: statusCode, region: '-', endpoint: '-', version: '-', error: '' };
    pending = null;
    samples.push({ at, sentAt: at - responseTime, latencyMs: responseTime, ...p });
  });
  instance.on('reqError', (err: unknown) => {
    samples.push({ at: performance.now(), ...UNANSWERED, error: errorCode(err) });
  });
  return {
    samples,
    async stop() {
      instance.stop();
      const result = await done;
      return { sent: result.requests.sent, seen: samples.length };
    },
  };
}
