import { createHash } from 'node:crypto';
import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { TestMeridian } from './meridian.js';

/** Hex SHA-256 of a buffer: compares large bodies without printing them. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Requests sent to upstreams and not yet finished, summed over every distinct
 * upstream of the routing table in force (the data plane's own accounting).
 */
export function outstanding(m: TestMeridian): number {
  const table = m.meridian.applier.current;
  if (table === null) throw new Error('no routing table in force');
  const seen = new Set<object>();
  let total = 0;
  for (const service of table.services.values()) {
    for (const version of service.versions.values()) {
      for (const group of version.groups) {
        for (const endpoint of group.all) {
          if (seen.has(endpoint.upstream)) continue;
          seen.add(endpoint.upstream);
          total += endpoint.upstream.outstanding;
        }
      }
    }
  }
  return total;
}

/** How a streamed exchange ended, as the client saw it; never rejects on a cut connection. */
export interface StreamOutcome {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** True when the response body ended cleanly (node:http `res.complete`). */
  complete: boolean;
  /** The first error the request or response emitted, if any. */
  error: Error | null;
  /** Whether the request emitted 'continue' (a `100 Continue` arrived). */
  continued: boolean;
}

/** Options of streamRequest: the request plus hooks to drive it. */
export interface StreamRequestOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string> | string[];
  timeoutMs?: number;
  /** Drives the request body; when absent the request is ended with no body. */
  write?: (req: ClientRequest) => void;
  /** Called with each response chunk. */
  onData?: (chunk: Buffer, req: ClientRequest, res: IncomingMessage) => void;
  /** Called on `100 Continue`. */
  onContinue?: (req: ClientRequest) => void;
}

/**
 * A node:http request whose outcome is recorded rather than thrown: for tests
 * where the connection is cut on purpose. Resolves once the exchange is over
 * (response ended, or request/response closed), bounded by `timeoutMs`.
 */
export function streamRequest(port: number, options: StreamRequestOptions = {}): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    const outcome: StreamOutcome = { status: 0, headers: {}, body: Buffer.alloc(0), complete: false, error: null, continued: false };
    const chunks: Buffer[] = [];
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome.body = Buffer.concat(chunks);
      resolve(outcome);
    };
    const fail = (err: Error): void => {
      outcome.error ??= err;
    };
    const req = httpRequest({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers: options.headers, agent: false });
    const timer = setTimeout(() => {
      fail(new Error('client timeout'));
      req.destroy();
      settle();
    }, options.timeoutMs ?? 10_000);
    req.on('error', fail);
    req.on('continue', () => {
      outcome.continued = true;
      options.onContinue?.(req);
    });
    req.on('close', () => setImmediate(settle));
    req.on('response', (res) => {
      outcome.status = res.statusCode ?? 0;
      outcome.headers = res.headers;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        options.onData?.(chunk, req, res);
      });
      res.on('error', fail);
      res.on('aborted', () => fail(new Error('response aborted')));
      res.on('end', () => {
        outcome.complete = res.complete;
        settle();
      });
      res.on('close', () => {
        outcome.complete = res.complete;
        setImmediate(settle);
      });
    });
    if (options.write !== undefined) options.write(req);
    else if (options.onContinue === undefined) req.end();
  });
}

/** A raw HTTP/1.1 response parsed from bytes read off a socket. */
export interface RawResponse {
  status: number;
  statusText: string;
  /** Header values by lowercase name, in order of arrival. */
  headers: Map<string, string[]>;
  body: Buffer;
}

/** Splits one HTTP/1.1 response head (and whatever follows it) out of raw bytes; null when the head is incomplete. */
export function parseRawResponse(data: Buffer): RawResponse | null {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
  if (statusLine === null) throw new Error(`not an HTTP status line: ${JSON.stringify(lines[0])}`);
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const values = headers.get(name) ?? [];
    values.push(line.slice(colon + 1).trim());
    headers.set(name, values);
  }
  return { status: Number(statusLine[1]), statusText: statusLine[2] ?? '', headers, body: data.subarray(end + 4) };
}

/** A raw TCP client that accumulates what it reads, for protocols node:http would hide (upgrades, CONNECT). */
export interface RawClient {
  readonly socket: Socket;
  /** Everything read so far. */
  received(): Buffer;
  /** Resolves when the bytes read so far satisfy `check`; rejects after `timeoutMs` or on close without it. */
  until(check: (data: Buffer) => boolean, what: string, timeoutMs?: number): Promise<Buffer>;
  /** Resolves once the server has closed its side (or the socket closed). */
  closed(timeoutMs?: number): Promise<void>;
}

/** Connects a raw client to 127.0.0.1:port. */
export async function rawConnect(port: number): Promise<RawClient> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let data = Buffer.alloc(0);
  let ended = false;
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
    wake();
  });
  socket.on('error', () => {
    ended = true;
    wake();
  });
  socket.on('end', () => {
    ended = true;
    wake();
  });
  socket.on('close', () => {
    ended = true;
    wake();
  });
  const until = (check: (d: Buffer) => boolean, what: string, timeoutMs = 5_000): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const done = (err: Error | null): void => {
        waiters.delete(look);
        clearTimeout(timer);
        if (err === null) resolve(data);
        else reject(err);
      };
      const look = (): void => {
        if (check(data)) done(null);
        else if (ended) done(new Error(`connection closed before ${what}; got ${JSON.stringify(data.toString('latin1'))}`));
      };
      const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs}ms waiting for ${what}; got ${JSON.stringify(data.toString('latin1'))}`)), timeoutMs);
      waiters.add(look);
      look();
    });
  return {
    socket,
    received: () => data,
    until,
    async closed(timeoutMs = 5_000) {
      await until(() => ended, 'the connection to close', timeoutMs);
    },
  };
}
