import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { AdminServer } from './admin/server.js';
import { ConfigError, type ConfigIssue } from './config/issues.js';
import type { StaticConfig } from './config/static-schema.js';
import { Locator } from './geo/locator.js';
import { PrefixMap } from './geo/prefix-map.js';
import { HealthRegistry } from './health/registry.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { ProxyServer } from './proxy/server.js';
import { UpstreamRegistry } from './proxy/upstream.js';
import { TableApplier, type ApplyResult } from './store/applier.js';
import { FileStore, type FileSnapshot } from './store/file.js';
import { readSnapshot } from './store/snapshot.js';

/** Options of a Meridian instance besides its static configuration. */
export interface StartOptions {
  readonly logger?: Logger;
  /** Export Node's default process metrics (on in production; tests may turn them off). */
  readonly defaultMetrics?: boolean;
}

/** A running Meridian node. */
export interface Meridian {
  readonly config: StaticConfig;
  readonly proxyAddress: AddressInfo;
  readonly adminAddress: AddressInfo;
  readonly applier: TableApplier;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Graceful stop: readyz 503, in-flight requests finish (bounded by proxy.shutdownTimeout), listeners close. */
  close(): Promise<void>;
}

/** Features of the contract that later releases deliver; refused clearly rather than ignored. */
function unsupported(config: StaticConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (config.dns !== undefined) issues.push({ path: 'dns', message: 'the GeoDNS server is not available in this release yet; remove the dns section' });
  if (config.store.etcd !== undefined) issues.push({ path: 'store.etcd', message: 'the etcd store is not available in this release yet; use store.file' });
  if (config.geo.mmdb !== undefined) issues.push({ path: 'geo.mmdb', message: 'MaxMind databases are not supported in this release yet; use geo.networks' });
  return issues;
}

function applyFileSnapshot(applier: TableApplier, snapshot: FileSnapshot): ApplyResult {
  if (snapshot.ok) return applier.apply({ source: 'file', document: snapshot.document });
  applier.reject('file', snapshot.error.issues);
  return { result: 'rejected', issues: snapshot.error.issues };
}

/** Loads the first routing table: the routes file, else the last-good snapshot; throws when neither works. */
async function loadInitialTable(store: FileStore, applier: TableApplier, snapshotPath: string, origin: string, logger: Logger): Promise<void> {
  const first = applyFileSnapshot(applier, await store.read());
  if (first.result !== 'rejected') return;
  let snapshot;
  try {
    snapshot = await readSnapshot(snapshotPath);
  } catch (err) {
    logger.warn({ err: (err as Error).message, path: snapshotPath }, 'last-good snapshot unreadable');
  }
  if (snapshot === null || snapshot === undefined) throw new ConfigError(first.issues);
  if (snapshot.origin !== origin) {
    logger.warn({ path: snapshotPath, snapshotOrigin: snapshot.origin, origin }, 'last-good snapshot belongs to another source; not used');
    throw new ConfigError(first.issues);
  }
  const fromSnapshot = applier.apply({ source: 'snapshot', document: snapshot.document, revision: snapshot.revision, stale: true });
  if (fromSnapshot.result === 'rejected') throw new ConfigError(first.issues);
  applier.issues = first.issues;
  logger.warn({ path: snapshotPath, revision: snapshot.revision, savedAt: snapshot.savedAt }, 'routes file unusable; serving the last-good snapshot');
}

/** Starts a Meridian node: routing table, proxy listener, admin listener, file watching. */
export async function startMeridian(config: StaticConfig, options: StartOptions = {}): Promise<Meridian> {
  const problems = unsupported(config);
  if (problems.length > 0) throw new ConfigError(problems);
  const logger = options.logger ?? createLogger();
  const metrics = new Metrics({ defaultMetrics: options.defaultMetrics ?? true });
  const upstreams = new UpstreamRegistry();
  const locator = new Locator(config.geo.networks, config.node);
  const trusted = new PrefixMap<true>();
  for (const cidr of config.proxy.trustedProxies) trusted.add(cidr, true);
  const store = new FileStore(config.store.file as string, logger);
  const origin = `file:${resolve(store.path)}`;
  const health = new HealthRegistry({ activeChecks: true, logger, metrics });
  const applier = new TableApplier({
    upstreams,
    health,
    metrics,
    logger,
    node: locator.node,
    snapshotPath: config.store.snapshot,
    origin,
    rejectOnIssues: true,
  });
  await loadInitialTable(store, applier, config.store.snapshot, origin, logger);

  const proxy = new ProxyServer({
    listen: config.proxy.listen,
    nodeName: config.node.name,
    trustedProxies: trusted,
    debugHeaders: config.proxy.debugHeaders,
    headersTimeoutMs: config.proxy.headersTimeout,
    requestTimeoutMs: config.proxy.requestTimeout,
    keepAliveTimeoutMs: config.proxy.keepAliveTimeout,
    tables: applier,
    locator,
    metrics,
    logger,
  });
  const reload = async (): Promise<{ result: string; errors: { key: string; message: string }[] }> => {
    const outcome = applyFileSnapshot(applier, await store.read());
    return { result: outcome.result, errors: applier.issues.map((i) => ({ key: i.path, message: i.message })) };
  };
  const admin = new AdminServer({ listen: config.admin.listen, token: config.admin.token, config, applier, metrics, logger, isDraining: () => proxy.draining, reload });
  const proxyAddress = await proxy.listen();
  let adminAddress: AddressInfo;
  try {
    adminAddress = await admin.listen();
  } catch (err) {
    await proxy.close(0);
    throw err;
  }
  store.watch((snapshot) => {
    applyFileSnapshot(applier, snapshot);
  });
  logger.info({ proxy: proxyAddress, admin: adminAddress, node: config.node.name, routes: config.store.file }, 'meridian started');

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      logger.info({ inFlight: proxy.inFlight, timeoutMs: config.proxy.shutdownTimeout }, 'shutting down: draining requests in flight');
      await store.close();
      await proxy.close(config.proxy.shutdownTimeout);
      health.close();
      await upstreams.closeAll(true);
      await admin.close();
      await applier.flush();
      logger.info('meridian stopped');
    })();
    return closing;
  };
  return { config, proxyAddress, adminAddress, applier, metrics, logger, close };
}
