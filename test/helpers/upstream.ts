import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A request as an upstream saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** True when the request stream ended with an error or abort instead of completing. */
  aborted: boolean;
}

/** A real HTTP upstream on 127.0.0.1, port 0, that tests can make misbehave. */
export interface TestUpstream {
  readonly port: number;
  readonly address: string;
  readonly server: Server;
  readonly seen: SeenRequest[];
  /** Requests whose handler ran; includes ones still in progress. */
  started: number;
  /** Status answered to Meridian's active health checks (which never reach the handler nor `seen`). */
  healthStatus: number;
  /** Health checks answered so far. */
  healthChecks: number;
  /** Replaces the request handler. */
  handle(fn: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): void;
  /** Open sockets right now. */
  connections(): number;
  /** Stops listening and destroys every connection (a crashed upstream). */
  kill(): Promise<void>;
}

/** Starts an upstream that by default answers 200 with JSON naming `label`. */
export async function startUpstream(label = 'upstream', options: { collectBody?: boolean } = {}): Promise<TestUpstream> {
  const sockets = new Set<Socket>();
  const seen: SeenRequest[] = [];
  let handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void = (req, res) => {
    const body = JSON.stringify({ label, url: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': label }).end(body);
  };
  const server = createServer((req, res) => {
    if (req.headers['user-agent'] === 'meridian-health-check') {
      upstream.healthChecks++;
      res.writeHead(upstream.healthStatus, { 'content-type': 'text/plain' }).end('health\n');
      return;
    }
    upstream.started++;
    const entry: SeenRequest = { method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, headers: req.headers, body: Buffer.alloc(0), aborted: false };
    seen.push(entry);
    if (options.collectBody === false) {
      handler(req, res, Buffer.alloc(0));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => (entry.aborted = true));
    req.on('aborted', () => (entry.aborted = true));
    req.on('end', () => {
      entry.body = Buffer.concat(chunks);
      handler(req, res, entry.body);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const upstream: TestUpstream = {
    port,
    address: `127.0.0.1:${port}`,
    server,
    seen,
    started: 0,
    healthStatus: 200,
    healthChecks: 0,
    handle(fn) {
      handler = fn;
    },
    connections: () => sockets.size,
    async kill() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
  return upstream;
}
