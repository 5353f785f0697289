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
 * several processes share.
 */
const MAX_PATH = 2048;
const MAX_HOST = 256;
const MAX_METHOD = 32;

/**
 * A field that cannot hold a character JSON escapes, quoted as it is: names
 * the schema allows ([A-Za-z0-9._-]), endpoint keys, catalog codes, and
 * request ids (a trusted peer's only when a safe token, else a UUID). What a
 * client writes (method, host, path, and the address it forwarded) is escaped.
 */
function plain(text: string | null | undefined): string {
  return text === null || text === undefined ? 'null' : `"${text}"`;
}

let isoMs = -1;
let isoText = '';

/** The time now in ISO 8601 with milliseconds, formatted once per millisecond however many lines share it. */
export function isoNow(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoText = new Date(now).toISOString();
  }
  return isoText;
}

/** Milliseconds with three decimals (microseconds), as a JSON number; integers only, as shortest-form doubles cost more to print. */
function ms(value: number): string {
  const us = Math.round(value * 1000);
  const frac = us % 1000;
  return `${(us - frac) / 1000}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

/** The protocol field of a request: `HTTP/2`, `HTTP/1.1` or `HTTP/1.0`. */
export function protocolOf(req: DownstreamRequest): string {
  if (req.httpVersionMajor === 2) return 'HTTP/2';
  return (req as DownstreamRequest & { httpVersionMinor?: number }).httpVersionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1';
}

/** One access line at `time` (ISO 8601): flat JSON in a fixed field order, pure ASCII, ending in a newline. */
export function formatAccessLine(r: AccessRecord, time: string): string {
  return (
    `{"time":"${time}","type":"${r.type}","id":${plain(r.id)},"client":${jsonString(r.client, MAX_HOST)}` +
    `,"method":${jsonOrNull(r.method, MAX_METHOD)},"host":${jsonOrNull(r.host, MAX_HOST)},"path":${jsonOrNull(r.path, MAX_PATH)},"protocol":"${r.protocol}"` +
    `,"status":${r.status},"bytesIn":${r.bytesIn},"bytesOut":${r.bytesOut},"durationMs":${ms(r.durationMs)},"upstreamMs":${r.upstreamMs === null ? 'null' : ms(r.upstreamMs)}` +
    `,"route":${plain(r.route)},"service":${plain(r.service)},"version":${plain(r.version)},"region":${plain(r.region)}` +
    `,"endpoint":${plain(r.endpoint)},"tries":${r.tries},"error":${plain(r.error)}}\n`
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
    this.#sink.write(formatAccessLine(record, isoNow()));
  }
}
