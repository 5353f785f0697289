import { formatIssue } from '../config/issues.js';
import type { StaticConfig } from '../config/static-schema.js';
import type { HealthRegistry } from '../health/registry.js';
import { endpointKey } from '../net/upstream-tls.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { EtcdStore, type EtcdSnapshot } from './etcd.js';
import { createEtcdClient, type EtcdSettings } from './etcd-client.js';
import { FleetPublisher, type FleetEndpoint, type NodeView } from './fleet.js';
import type { ProviderDocument, ProviderUpdate, RoutingProvider } from './provider.js';

/** What the etcd provider needs from the node besides etcd. */
export interface EtcdProviderDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly node: StaticConfig['node'];
  readonly health: HealthRegistry;
  /** The revision of the table in force, published in the node's fleet view. */
  readonly revision: () => number;
  /** Told whether etcd is reachable: the table in force is stale while it is not. */
  readonly onConnection: (connected: boolean) => void;
}

/** This node's health view, as the fleet sees it. */
function nodeView(deps: EtcdProviderDeps): NodeView {
  const endpoints: Record<string, FleetEndpoint> = {};
  for (const h of deps.health.entries()) {
    endpoints[h.key] = { address: endpointKey(h.address), up: h.up, state: h.state, reason: h.reason, since: new Date(h.changedAt).toISOString() };
  }
  return { node: deps.node.name, region: deps.node.region ?? null, revision: deps.revision(), updatedAt: new Date().toISOString(), endpoints };
}

/** One etcd snapshot as a version: refused as a whole when it is no table at all, else the objects in force with the held-back keys shown. */
function versionOf(snapshot: EtcdSnapshot): ProviderUpdate {
  const problems = [...snapshot.issues, ...snapshot.heldBack];
  const document: ProviderDocument =
    snapshot.issues.length > 0
      ? { ok: false, issues: problems }
      : { ok: true, doc: snapshot.doc, rawJson: snapshot.rawJson, revision: snapshot.revision, heldBack: snapshot.heldBack };
  return { digest: `${snapshot.generation}\n${problems.map(formatIssue).join('\n')}`, read: () => Promise.resolve(document) };
}

/**
 * etcd as a provider: lists the prefix, then follows it revision by revision
 * (EtcdStore), and publishes this node's health view for the fleet. Boot waits
 * for etcd's first answer up to its startup timeout; a prefix holding no table
 * leaves the node not ready until keys appear.
 */
export function etcdProvider(settings: EtcdSettings, deps: EtcdProviderDeps): RoutingProvider {
  const { logger, metrics, health } = deps;
  const client = createEtcdClient(settings);
  const store = new EtcdStore(client, settings.prefix, logger, metrics, (state) => deps.onConnection(state === 'connected'));
  const publisher = new FleetPublisher(client, settings.prefix, deps.node.name, () => nodeView(deps), logger);
  return {
    kind: 'etcd',
    boot: { answerWithinMs: settings.startupTimeout, whenRefused: 'wait', silence: `etcd (${settings.endpoints.join(', ')}) did not answer within ${settings.startupTimeout} ms` },
    start(emit) {
      health.onChange(() => publisher.changed());
      store.run((snapshot) => void emit(versionOf(snapshot)).then(() => publisher.changed()));
    },
    reload: () => Promise.resolve('unchanged'),
    state: () => ({ kind: 'etcd', endpoints: settings.endpoints, prefix: settings.prefix, connection: store.state, revision: store.revision, fleet: store.fleet() }),
    async close() {
      await publisher.close();
      await store.close();
    },
  };
}
