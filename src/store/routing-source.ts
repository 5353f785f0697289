import { resolve } from 'node:path';
import type { RoutingParser } from '../config/routing-parser.js';
import type { StaticConfig } from '../config/static-schema.js';
import type { HealthRegistry } from '../health/registry.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TableApplier } from './applier.js';
import { bootRouting } from './boot.js';
import { etcdProvider } from './etcd-provider.js';
import { fileProvider } from './file-provider.js';
import type { LastGood } from './last-good.js';
import type { RoutingProvider } from './provider.js';
import { TableWatcher } from './watcher.js';

/** Which source a configuration reads (`file:/abs/path`, `etcd:/prefix/`): a snapshot only stands in for its own. */
export function sourceOrigin(config: StaticConfig): string {
  const etcd = config.store.etcd;
  return etcd === undefined ? `file:${resolve(config.store.file as string)}` : `etcd:${etcd.prefix}`;
}

/** Where the last-good snapshot of a configuration's source lives. */
function lastGoodOf(config: StaticConfig): LastGood {
  return { path: config.store.snapshot, origin: sourceOrigin(config) };
}

/** The provider of the configured source: the routes file or etcd. */
function providerOf(config: StaticConfig, applier: TableApplier, deps: RoutingSourceDeps): RoutingProvider {
  const etcd = config.store.etcd;
  if (etcd === undefined) return fileProvider(config.store.file as string, deps.parser, deps.logger);
  return etcdProvider(etcd, {
    logger: deps.logger,
    metrics: deps.metrics,
    node: config.node,
    health: deps.health,
    revision: () => applier.current?.revision ?? 0,
    onConnection: (connected) => applier.markStale(!connected),
  });
}

/** What the routing source part uses besides the configuration and the applier. */
export interface RoutingSourceDeps {
  readonly parser: RoutingParser;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly health: HealthRegistry;
}

/** The routing source as a part of a node: started (first table, then following the source) and closed with it; reload and state for the admin API. */
export interface RoutingSourcePart {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The admin reload: what happened, and the problems now shown. */
  reload(): Promise<{ result: string; errors: { key: string; message: string }[] }>;
  /** The source as the admin state shows it. */
  state(): Record<string, unknown>;
}

/** The configured routing source as a part of a node: provider -> watcher -> applier (see RoutingSourcePart). */
export function routingSourcePart(config: StaticConfig, applier: TableApplier, deps: RoutingSourceDeps): RoutingSourcePart {
  const kind = config.store.etcd === undefined ? 'file' : 'etcd';
  // Made when the part starts, so a node that fails before then has no etcd client to close.
  let provider: RoutingProvider | null = null;
  let started = false;
  return {
    name: 'routing source',
    async start() {
      provider = providerOf(config, applier, deps);
      await bootRouting(provider, new TableWatcher(applier, kind), applier, lastGoodOf(config), deps.logger);
      started = true;
    },
    stop: async () => provider?.close(),
    async reload() {
      const result = started && provider !== null ? await provider.reload() : 'unchanged';
      return { result, errors: applier.issues.map((i) => ({ key: i.path, message: i.message })) };
    },
    state: () => (started && provider !== null ? provider.state() : { kind, starting: true }),
  };
}
