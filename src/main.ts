import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { AdminServer } from './admin/server.js';
import { ConfigError } from './config/issues.js';
import type { StaticConfig } from './config/static-schema.js';
import { DnsServer } from './dns/server.js';
import { Locator } from './geo/locator.js';
import { GeoDatabase } from './geo/mmdb.js';
import { PrefixMap } from './geo/prefix-map.js';
import { HealthRegistry } from './health/registry.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { ProxyServer } from './proxy/server.js';
import { UpstreamRegistry } from './proxy/upstream.js';
import { TableApplier, type ApplyResult } from './store/applier.js';
import { EtcdStore } from './store/etcd.js';
import { createEtcdClient, type EtcdSettings } from './store/etcd-client.js';
import { FileStore, type FileSnapshot } from './store/file.js';
import { FleetPublisher, type FleetEndpoint, type NodeView } from './store/fleet.js';
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
  /** Where GeoDNS listens (UDP and TCP), null without a dns section. */
  readonly dnsAddress: AddressInfo | null;
  readonly applier: TableApplier;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Graceful stop: readyz 503, in-flight requests finish (bounded by proxy.shutdownTimeout), listeners close. */
  close(): Promise<void>;
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

/** Opens `geo.mmdb` for the locator (watching starts once the node is up). */
async function openGeoDatabase(path: string, locator: Locator, logger: Logger): Promise<GeoDatabase> {
  let database: GeoDatabase;
  try {
    database = await GeoDatabase.open(path, logger, () => locator.forget());
  } catch (err) {
    throw new ConfigError([{ path: 'geo.mmdb', message: (err as Error).message }]);
  }
  locator.useDatabase(database);
  logger.info(database.state(), 'geo database loaded');
  return database;
}

/** This node's health view, as the fleet sees it. */
function nodeView(node: StaticConfig['node'], applier: TableApplier, health: HealthRegistry): NodeView {
  const endpoints: Record<string, FleetEndpoint> = {};
  for (const h of health.entries()) {
    endpoints[h.key] = { up: h.up, state: h.state, reason: h.reason, since: new Date(h.changedAt).toISOString() };
  }
  return { node: node.name, region: node.region ?? null, revision: applier.current?.revision ?? 0, updatedAt: new Date().toISOString(), endpoints };
}

/** Where the routing table comes from, once the first table is in force. */
interface RoutingSource {
  /** Starts following changes. */
  watch(): void;
  /** Re-reads the source now (admin reload). */
  reload(): Promise<string>;
  /** The source as the admin state shows it. */
  state(): Record<string, unknown>;
  close(): Promise<void>;
}

/** The first table from the routes file (else the snapshot), then the file watched. */
async function startFileSource(file: string, applier: TableApplier, snapshotPath: string, origin: string, logger: Logger): Promise<RoutingSource> {
  const store = new FileStore(file, logger);
  await loadInitialTable(store, applier, snapshotPath, origin, logger);
  return {
    watch: () => store.watch((snapshot) => void applyFileSnapshot(applier, snapshot)),
    reload: async () => applyFileSnapshot(applier, await store.read()).result,
    state: () => ({ kind: 'file', path: resolve(file) }),
    close: () => store.close(),
  };
}

/**
 * The first table from etcd; when etcd does not answer within its startup
 * timeout, from the last-good snapshot (stale) while the store keeps trying.
 */
async function startEtcdSource(
  settings: EtcdSettings,
  applier: TableApplier,
  snapshotPath: string,
  origin: string,
  logger: Logger,
  metrics: Metrics,
  fleet: { node: StaticConfig['node']; health: HealthRegistry },
): Promise<RoutingSource> {
  const client = createEtcdClient(settings);
  const store = new EtcdStore(client, settings.prefix, logger, metrics);
  const publisher = new FleetPublisher(client, settings.prefix, fleet.node.name, () => nodeView(fleet.node, applier, fleet.health), logger);
  fleet.health.onChange(() => publisher.changed());
  let first: (() => void) | null = null;
  const answered = new Promise<void>((resolve) => (first = resolve));
  store.run((snapshot) => {
    applier.apply({ source: 'etcd', document: snapshot.document, revision: snapshot.revision, keyIssues: snapshot.keyIssues });
    publisher.changed();
    first?.();
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([answered.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), settings.startupTimeout)))]);
  clearTimeout(timer);
  if (timedOut) {
    const snapshot = await readSnapshot(snapshotPath).catch((err: Error) => {
      logger.warn({ err: err.message, path: snapshotPath }, 'last-good snapshot unreadable');
      return null;
    });
    const message = `etcd (${settings.endpoints.join(', ')}) did not answer within ${settings.startupTimeout} ms`;
    if (snapshot === null || snapshot.origin !== origin) {
      await store.close();
      throw new ConfigError([{ path: 'store.etcd', message: `${message} and there is no last-good snapshot of ${origin} in ${snapshotPath}` }]);
    }
    // etcd may have answered meanwhile: its table wins.
    if (applier.current === null) applier.apply({ source: 'snapshot', document: snapshot.document, revision: snapshot.revision, stale: true });
    logger.warn({ path: snapshotPath, revision: snapshot.revision }, `${message}; serving the last-good snapshot while retrying`);
  }
  return {
    watch: () => undefined,
    reload: async () => 'unchanged',
    state: () => ({ kind: 'etcd', endpoints: settings.endpoints, prefix: settings.prefix, connection: store.state, revision: store.revision, fleet: store.fleet() }),
    close: async () => {
      await publisher.close();
      await store.close();
    },
  };
}

/** Starts a Meridian node: routing table, proxy listener, admin listener, file watching. */
export async function startMeridian(config: StaticConfig, options: StartOptions = {}): Promise<Meridian> {
  const logger = options.logger ?? createLogger();
  const metrics = new Metrics({ defaultMetrics: options.defaultMetrics ?? true });
  const upstreams = new UpstreamRegistry();
  const locator = new Locator(config.geo.networks, config.node);
  const geoDatabase = config.geo.mmdb === undefined ? null : await openGeoDatabase(config.geo.mmdb, locator, logger);
  const trusted = new PrefixMap<true>();
  for (const cidr of config.proxy.trustedProxies) trusted.add(cidr, true);
  const etcd = config.store.etcd;
  const origin = etcd === undefined ? `file:${resolve(config.store.file as string)}` : `etcd:${etcd.prefix}`;
  const health = new HealthRegistry({ activeChecks: true, logger, metrics });
  const applier = new TableApplier({
    upstreams,
    health,
    metrics,
    logger,
    node: locator.node,
    snapshotPath: config.store.snapshot,
    origin,
    rejectOnIssues: etcd === undefined,
  });
  const source = etcd === undefined ? await startFileSource(config.store.file as string, applier, config.store.snapshot, origin, logger) : await startEtcdSource(etcd, applier, config.store.snapshot, origin, logger, metrics, { node: config.node, health });

  const proxy = new ProxyServer({
    listen: config.proxy.listen,
    nodeName: config.node.name,
    trustedProxies: trusted,
    debugHeaders: config.proxy.debugHeaders,
    headersTimeoutMs: config.proxy.headersTimeout,
    requestTimeoutMs: config.proxy.requestTimeout,
    keepAliveTimeoutMs: config.proxy.keepAliveTimeout,
    maxHeaders: config.proxy.maxHeaders,
    maxConnections: config.proxy.maxConnections ?? 0,
    escapedSlashes: config.proxy.escapedSlashes,
    tables: applier,
    locator,
    metrics,
    logger,
  });
  const dns = config.dns === undefined ? null : new DnsServer(config.dns, { tables: applier, health, locator, metrics, logger });
  const reload = async (): Promise<{ result: string; errors: { key: string; message: string }[] }> => {
    const outcome = await source.reload();
    return { result: outcome, errors: applier.issues.map((i) => ({ key: i.path, message: i.message })) };
  };
  const admin = new AdminServer({ listen: config.admin.listen, token: config.admin.token, config, applier, metrics, logger, isDraining: () => proxy.draining, reload,
    storeState: () => source.state(),
    partsState: () => ({ ...(dns === null ? {} : { dns: dns.state() }), ...(geoDatabase === null ? {} : { geo: geoDatabase.state() }) }),
  });
  const proxyAddress = await proxy.listen();
  let adminAddress: AddressInfo;
  let dnsAddress: AddressInfo | null = null;
  try {
    adminAddress = await admin.listen();
    if (dns !== null) dnsAddress = await dns.listen();
  } catch (err) {
    await proxy.close(0);
    await admin.close();
    await source.close();
    health.close();
    await geoDatabase?.close();
    throw err;
  }
  source.watch();
  geoDatabase?.watch();
  logger.info({ proxy: proxyAddress, admin: adminAddress, node: config.node.name, store: origin }, 'meridian started');

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      logger.info({ inFlight: proxy.inFlight, timeoutMs: config.proxy.shutdownTimeout }, 'shutting down: draining requests in flight');
      await source.close();
      await dns?.close();
      await proxy.close(config.proxy.shutdownTimeout);
      health.close();
      await upstreams.closeAll(true);
      await admin.close();
      await applier.flush();
      await geoDatabase?.close();
      logger.info('meridian stopped');
    })();
    return closing;
  };
  return { config, proxyAddress, adminAddress, dnsAddress, applier, metrics, logger, close };
}
