import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** One request head as a raw upstream read it. */
export interface RawRequest {
  /** The head as text, request line first, without the blank line. */
  readonly head: string;
  /** The request line: `GET /path HTTP/1.1`. */
  readonly line: string;
  /** Which connection it came on (0, 1, ... in accept order). */
  readonly connection: number;
}

/** Writes a response on the socket for one request, byte for byte as the test wants. */
export type RawScript = (socket: Socket, request: RawRequest) => void;

/** An HTTP upstream made of a bare TCP server: it answers with exactly the bytes a script writes. */
export interface RawUpstream {
  readonly port: number;
  readonly address: string;
  /** Requests seen, health checks excluded. */
  readonly requests: RawRequest[];
  /** Connections accepted so far. */
  accepted: number;
  /** Replaces the script run for each request. */
  script(fn: RawScript): void;
  /** Closes every connection and the listener. */
  close(): Promise<void>;
}

const HEALTH_OK = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n';

/** The body length a request head declares (its bodies are read and ignored). */
function bodyLength(head: string): number {
  const match = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  return match === null ? 0 : Number(match[1]);
}

/**
 * Starts a raw upstream on 127.0.0.1, port 0. Each complete request head
 * (bodies with content-length are skipped) runs the script; Meridian's health
 * checks are answered 200 without it. By default every request gets a 200 `ok`.
 */
export async function startRawUpstream(): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const requests: RawRequest[] = [];
  let script: RawScript = (socket) => socket.write(HEALTH_OK);
  const server: Server = createServer((socket) => {
    const connection = upstream.accepted++;
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = Buffer.alloc(0);
    let skip = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (skip > 0) {
          const n = Math.min(skip, buffered.length);
          skip -= n;
          buffered = buffered.subarray(n);
          if (skip > 0) return;
        }
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.subarray(0, end).toString('latin1');
        buffered = buffered.subarray(end + 4);
        skip = bodyLength(head);
        if (/\r\nuser-agent: meridian-health-check/i.test(head)) {
          socket.write(HEALTH_OK);
          continue;
        }
        const request: RawRequest = { head, line: head.slice(0, head.indexOf('\r\n')), connection };
        requests.push(request);
        script(socket, request);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const upstream: RawUpstream = {
    port,
    address: `127.0.0.1:${port}`,
    requests,
    accepted: 0,
    script(fn) {
      script = fn;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
  return upstream;
}

/** Writes pieces one after another, each in its own TCP segment (the next waits until the previous is flushed and a little after). */
export function writeInPieces(socket: Socket, pieces: readonly (string | Buffer)[], gapMs = 20): void {
  const next = (i: number): void => {
    if (i >= pieces.length || socket.destroyed) return;
    socket.write(pieces[i] as string | Buffer, () => setTimeout(() => next(i + 1), gapMs));
  };
  next(0);
}
