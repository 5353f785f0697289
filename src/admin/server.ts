import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HostPort } from '../config/address.js';
import type { StaticConfig } from '../config/static-schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TableApplier } from '../store/applier.js';
import { buildState } from './state.js';

/** What the admin listener reads and can ask for. */
export interface AdminOptions {
  readonly listen: HostPort;
  readonly token: string;
  readonly config: StaticConfig;
  readonly applier: TableApplier;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Whether the node is shutting down (readyz turns 503). */
  isDraining(): boolean;
  /** Re-reads the routing source now; resolves with what happened. */
  reload(): Promise<{ result: string; errors: { key: string; message: string }[] }>;
  /** What the routing source reports about itself (kind, connection state, revision). */
  storeState(): Record<string, unknown>;
  /** Sections of optional parts (dns, geo) for the state document; absent parts return nothing. */
  partsState(): Record<string, unknown>;
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value, null, 2)}\n`);
}

/** Compares a bearer token in constant time. */
function authorised(req: IncomingMessage, token: string): boolean {
  if (token === '') return true;
  const header = req.headers.authorization ?? '';
  const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/**
 * The admin listener: liveness, readiness, Prometheus metrics, the state
 * document, and a reload trigger (bearer token required when configured).
 */
export class AdminServer {
  readonly server: Server;
  readonly #options: AdminOptions;

  constructor(options: AdminOptions) {
    this.#options = options;
    this.server = createServer((req, res) => {
      this.#handle(req, res).catch((err: Error) => {
        options.logger.error({ err: err.message, url: req.url }, 'admin request failed');
        if (!res.headersSent) sendJson(res, 500, { error: 'internal-error', message: err.message });
        else res.destroy();
      });
    });
  }

  /** Whether a routing table is in force and the node is not shutting down. */
  get ready(): boolean {
    return this.#options.applier.current !== null && !this.#options.isDraining();
  }

  /** Starts listening; resolves with the bound address. */
  async listen(): Promise<AddressInfo> {
    const { host, port } = this.#options.listen;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Stops the listener and closes its connections. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    const route = `${method} ${path}`;
    switch (route) {
      case 'GET /healthz':
      case 'HEAD /healthz':
        return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      case 'GET /readyz':
      case 'HEAD /readyz':
        return this.ready ? send(res, 200, 'text/plain; charset=utf-8', 'ready\n') : send(res, 503, 'text/plain; charset=utf-8', 'not ready\n');
      case 'GET /metrics': {
        const registry = this.#options.metrics.registry;
        return send(res, 200, registry.contentType, await registry.metrics());
      }
      case 'GET /api/v1/state':
        return sendJson(res, 200, { ...buildState(this.#options.config, this.#options.applier, this.ready), store: this.#options.storeState(), ...this.#options.partsState() });
      case 'POST /api/v1/reload':
        if (!authorised(req, this.#options.token)) return sendJson(res, 401, { error: 'unauthorised', message: 'a valid bearer token is required' });
        return sendJson(res, 200, await this.#options.reload());
      default: {
        const known = ['/healthz', '/readyz', '/metrics', '/api/v1/state', '/api/v1/reload'].includes(path ?? '');
        return known
          ? sendJson(res, 405, { error: 'method-not-allowed', message: `${method} is not allowed on ${path ?? ''}` })
          : sendJson(res, 404, { error: 'not-found', message: `no admin endpoint ${path ?? ''}` });
      }
    }
  }
}
