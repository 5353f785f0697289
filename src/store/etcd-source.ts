import type { StaticConfig } from '../config/static-schema.js';
import type { HealthRegistry } from '../health/registry.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TableApplier } from './applier.js';
import { EtcdStore, type EtcdSnapshot } from './etcd.js';
import { createEtcdClient, type EtcdSettings } from './etcd-client.js';
import { FleetPublisher, type FleetEndpoint, type NodeView } from './fleet.js';
import { serveLastGood, type LastGood } from './last-good.js';
import type { RoutingSource } from './source.js';
import { ConfigError } from '../config/issues.js';

/** This node's health view, as the fleet sees it. */
function nodeView(node: StaticConfig['node'], applier: TableApplier, health: HealthRegistry): NodeView {
  const endpoints: Record<string, FleetEndpoint> = {};
  for (const h of health.entries()) {
    endpoints[h.key] = { up: h.up, state: h.state, reason: h.reason, since: new Date(h.changedAt).toISOString() };
  }
  return { node: node.name, region: node.region ?? null, revision: applier.current?.revision ?? 0, updatedAt: new Date().toISOString(), endpoints };
}

/** Hands one etcd snapshot to the applier: refused as a whole when it is no table at all, else applied with its held-back keys shown. */
function applyEtcd(applier: TableApplier, snapshot: EtcdSnapshot): Promise<unknown> {
  if (snapshot.issues.length > 0) return applier.reject('etcd', [...snapshot.issues, ...snapshot.heldBack]);
  return applier.apply({ source: 'etcd', doc: snapshot.doc, rawJson: snapshot.rawJson, revision: snapshot.revision, heldBack: snapshot.heldBack });
}

/**
 * etcd as the routing source. Boot waits for etcd's first answer up to its
 * startup timeout: a prefix holding no routing table leaves the node not ready
 * (and the snapshot untouched) until keys appear; no answer at all serves the
 * last-good snapshot (stale) while the store keeps trying. The table is stale
 * whenever etcd is unreachable.
 */
export async function startEtcdSource(
  settings: EtcdSettings,
  applier: TableApplier,
  lastGood: LastGood,
  deps: { readonly logger: Logger; readonly metrics: Metrics; readonly node: StaticConfig['node']; readonly health: HealthRegistry },
): Promise<RoutingSource> {
  const { logger, metrics, node, health } = deps;
  const client = createEtcdClient(settings);
  const store = new EtcdStore(client, settings.prefix, logger, metrics, (state) => applier.markStale(state !== 'connected'));
  const publisher = new FleetPublisher(client, settings.prefix, node.name, () => nodeView(node, applier, health), logger);
  health.onChange(() => publisher.changed());
  let answered: (() => void) | null = null;
  const firstAnswer = new Promise<void>((resolve) => (answered = resolve));
  store.run((snapshot) => {
    void applyEtcd(applier, snapshot).then(() => {
      publisher.changed();
      answered?.();
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([firstAnswer.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), settings.startupTimeout)))]);
  clearTimeout(timer);
  if (timedOut && applier.current === null) {
    const message = `etcd (${settings.endpoints.join(', ')}) did not answer within ${settings.startupTimeout} ms`;
    const why = await serveLastGood(lastGood, applier, [{ path: 'store.etcd', message, reason: 'unreadable' }], logger);
    if (why !== null) {
      await store.close();
      throw new ConfigError([{ path: 'store.etcd', message: `${message} and ${why}` }]);
    }
  }
  if (applier.current === null) logger.warn({ reason: applier.notReadyReason() }, 'not ready: waiting for a routing table in etcd');
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
