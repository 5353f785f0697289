import { jsonOrNull, jsonString } from '../observability/json-text.js';
import type { DownstreamRequest } from './downstream.js';

/** Where access lines go: a LineWriter, or anything taking whole lines. */
export interface LineSink {
  write(line: string): void;
}

/** What one access line says about a request or an upgraded connection. */
export interface AccessRecord {
  readonly type: 'request' | 'upgrade';
  readonly id: string | undefined;
  readonly client: string;
  readonly method: string | undefined;
  readonly host: string | undefined;
  readonly path: string | undefined;
  readonly protocol: string;
  readonly status: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly durationMs: number;
  /** Until the response head of the final try arrived; null when no upstream answered. */
  readonly upstreamMs: number | null;
  readonly route: string | null;
  readonly service: string | null;
  readonly version: string | null;
  readonly region: string | null;
  readonly endpoint: string | null;
  readonly tries: number;
  /** The x-meridian-error code of an answer Meridian wrote itself, or null. */
  readonly error: string | null;
}

/*
 * Caps on the escaped length of the fields a client chooses, so that a line
 * stays well under PIPE_BUF (4096 bytes) and lands whole even on a pipe that
 * several processes share. Names from the routing table are short by schema.
 */
const MAX_PATH = 2048;
const MAX_HOST = 256;
const MAX_ID = 200;
const MAX_NAME = 128;
const MAX_METHOD = 32;

/** Milliseconds with three decimals (microseconds), as a JSON number. */
function ms(value: number): string {
  return String(Math.round(value * 1000) / 1000);
}

/** The protocol field of a request: `HTTP/2`, `HTTP/1.1` or `HTTP/1.0`. */
export function protocolOf(req: DownstreamRequest): string {
  if (req.httpVersionMajor === 2) return 'HTTP/2';
  return (req as DownstreamRequest & { httpVersionMinor?: number }).httpVersionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1';
}

/** One access line: flat JSON in a fixed field order, pure ASCII, ending in a newline. */
export function formatAccessLine(r: AccessRecord, now: Date): string {
  return (
    `{"time":"${now.toISOString()}","type":"${r.type}","id":${jsonOrNull(r.id, MAX_ID)},"client":${jsonString(r.client, MAX_HOST)}` +
    `,"method":${jsonOrNull(r.method, MAX_METHOD)},"host":${jsonOrNull(r.host, MAX_HOST)},"path":${jsonOrNull(r.path, MAX_PATH)},"protocol":"${r.protocol}"` +
    `,"status":${r.status},"bytesIn":${r.bytesIn},"bytesOut":${r.bytesOut},"durationMs":${ms(r.durationMs)},"upstreamMs":${r.upstreamMs === null ? 'null' : ms(r.upstreamMs)}` +
    `,"route":${jsonOrNull(r.route, MAX_NAME)},"service":${jsonOrNull(r.service, MAX_NAME)},"version":${jsonOrNull(r.version, MAX_NAME)},"region":${jsonOrNull(r.region, MAX_NAME)}` +
    `,"endpoint":${jsonOrNull(r.endpoint, MAX_HOST)},"tries":${r.tries},"error":${jsonOrNull(r.error, MAX_NAME)}}\n`
  );
}

/**
 * The access log of one process: a line per request and per upgraded
 * connection, with successes (1xx-3xx) sampled and errors always written.
 * Absent (null) when `log.access` is off, so the request path pays one check.
 */
export class AccessLog {
  readonly #sink: LineSink;
  readonly #successSample: number;

  constructor(sink: LineSink, successSample: number) {
    this.#sink = sink;
    this.#successSample = successSample;
  }

  /** Whether a line for this status is written: every 4xx/5xx, and the sampled fraction of the rest. */
  wants(status: number): boolean {
    return status >= 400 || this.#successSample >= 1 || Math.random() < this.#successSample;
  }

  /** Writes one record (the caller asked `wants` first). */
  write(record: AccessRecord): void {
    this.#sink.write(formatAccessLine(record, new Date()));
  }
}
