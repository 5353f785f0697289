import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenOn, type HostPort } from '../net/address.js';
import type { StaticConfig } from '../config/static-schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TableApplier } from '../store/applier.js';
import { BearerToken } from './auth.js';
import { DashboardAssets } from './dashboard.js';
import { buildState } from './state.js';
import { trafficDocument, type MetricsJson } from './traffic.js';

/** What the admin listener reads and can ask for. */
export interface AdminOptions {
  readonly listen: HostPort;
  /** Bearer token for state, reload (and metrics when protected); empty: open. */
  readonly token: string;
  /** Whether /metrics needs the token too. */
  readonly protectMetrics: boolean;
  readonly config: StaticConfig;
  readonly applier: TableApplier;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Whether the node is shutting down (readyz turns 503). */
  isDraining(): boolean;
  /** Another reason the node cannot serve (a node whose workers are all down), or null. */
  notReady?(): string | null;
  /** The /metrics text, when it is more than this process's registry (a node's workers, aggregated). */
  metricsText?(): Promise<string>;
  /** The same metrics as prom-client JSON, for the traffic document (aggregated like metricsText). */
  metricsJson?(): Promise<MetricsJson>;
  /** Where the dashboard's files are (the package's `assets/dashboard/` by default). */
  readonly dashboardDir?: URL;
  /** Re-reads the routing source now; resolves with what happened. */
  reload(): Promise<{ result: string; errors: { key: string; message: string }[] }>;
  /** What the routing source reports about itself (kind, connection state, revision). */
  storeState(): Record<string, unknown>;
  /** Sections of optional parts (dns, geo) for the state document; absent parts return nothing. */
  partsState(): Record<string, unknown>;
  /** Problems of parts besides the routing table (a certificate that cannot be used), listed with the table's in `errors`. */
  partErrors?(): { key: string; message: string }[];
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value, null, 2)}\n`);
}

function sendUnauthorised(res: ServerResponse): void {
  res.setHeader('www-authenticate', 'Bearer realm="meridian-admin"');
  sendJson(res, 401, { error: 'unauthorised', message: 'a valid bearer token is required (Authorization: Bearer <admin.token>)' });
}

/** The dashboard's answer without credentials: a Basic challenge, so a browser asks for them (the token is the password). */
function sendBasicChallenge(res: ServerResponse): void {
  res.setHeader('www-authenticate', 'Basic realm="meridian-admin", charset="UTF-8"');
  send(res, 401, 'text/plain; charset=utf-8', 'the admin token is required (as the password, with any user name)\n');
}

/** Paths the admin listener answers (with 405 for other methods). */
const KNOWN = ['/healthz', '/readyz', '/metrics', '/api/v1/state', '/api/v1/traffic', '/api/v1/reload'];

/**
 * The admin listener: liveness, readiness, Prometheus metrics, the state and
 * traffic documents, a reload trigger, and the dashboard that reads them. With
 * a token configured, everything but liveness and readiness needs it (metrics
 * only when protected).
 */
export class AdminServer {
  readonly server: Server;
  readonly #options: AdminOptions;
  readonly #token: BearerToken;
  readonly #startedAt = Date.now();
  #dashboard: DashboardAssets | null = null;

  constructor(options: AdminOptions) {
    this.#options = options;
    this.#token = new BearerToken(options.token);
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
    return this.notReadyReason === null;
  }

  /** Why readyz answers 503, or null when ready. */
  get notReadyReason(): string | null {
    if (this.#options.isDraining()) return 'shutting down';
    return this.#options.notReady?.() ?? this.#options.applier.notReadyReason();
  }

  /** Reads the dashboard's files, then starts listening; resolves with the bound address. */
  async listen(): Promise<AddressInfo> {
    this.#dashboard = await DashboardAssets.load(this.#options.dashboardDir);
    if (this.#dashboard.problem !== null) this.#options.logger.warn({ problem: this.#dashboard.problem }, 'the dashboard is unavailable; the admin API serves on');
    return listenOn(this.server, this.#options.listen.host, this.#options.listen.port);
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
      case 'HEAD /readyz': {
        const reason = this.notReadyReason;
        return reason === null ? send(res, 200, 'text/plain; charset=utf-8', 'ready\n') : send(res, 503, 'text/plain; charset=utf-8', `not ready: ${reason}\n`);
      }
      case 'GET /metrics': {
        if (this.#options.protectMetrics && !this.#token.accepts(req.headers.authorization)) return sendUnauthorised(res);
        const registry = this.#options.metrics.registry;
        return send(res, 200, registry.contentType, await (this.#options.metricsText?.() ?? registry.metrics()));
      }
      case 'GET /api/v1/state': {
        if (!this.#token.accepts(req.headers.authorization)) return sendUnauthorised(res);
        const state = buildState(this.#options.config, this.#options.applier, this.ready, this.#startedAt);
        const errors = [...(state.errors as { key: string; message: string }[]), ...(this.#options.partErrors?.() ?? [])];
        return sendJson(res, 200, { ...state, errors, store: this.#options.storeState(), ...this.#options.partsState() });
      }
      case 'GET /api/v1/traffic': {
        if (!this.#token.accepts(req.headers.authorization)) return sendUnauthorised(res);
        const metrics = await (this.#options.metricsJson?.() ?? this.#options.metrics.registry.getMetricsAsJSON());
        return sendJson(res, 200, trafficDocument(metrics));
      }
      case 'POST /api/v1/reload':
        if (!this.#token.accepts(req.headers.authorization)) return sendUnauthorised(res);
        return sendJson(res, 200, await this.#options.reload());
      default: {
        if (DashboardAssets.owns(path ?? '') && this.#dashboard !== null && (method === 'GET' || method === 'HEAD')) {
          if (!this.#token.accepts(req.headers.authorization)) return sendBasicChallenge(res);
          return this.#dashboard.serve(req, res, path ?? '');
        }
        const known = KNOWN.includes(path ?? '') || DashboardAssets.owns(path ?? '');
        return known
          ? sendJson(res, 405, { error: 'method-not-allowed', message: `${method} is not allowed on ${path ?? ''}` })
          : sendJson(res, 404, { error: 'not-found', message: `no admin endpoint ${path ?? ''}` });
      }
    }
  }
}
