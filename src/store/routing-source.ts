import { resolve } from 'node:path';
import type { RoutingParser } from '../config/routing-parser.js';
import type { StaticConfig } from '../config/static-schema.js';
import type { HealthRegistry } from '../health/registry.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TableApplier } from './applier.js';
import { startEtcdSource } from './etcd-source.js';
import { startFileSource } from './file-source.js';
import type { LastGood } from './last-good.js';
import type { RoutingSource } from './source.js';

/** Which source a configuration reads (`file:/abs/path`, `etcd:/prefix/`): a snapshot only stands in for its own. */
export function sourceOrigin(config: StaticConfig): string {
  const etcd = config.store.etcd;
  return etcd === undefined ? `file:${resolve(config.store.file as string)}` : `etcd:${etcd.prefix}`;
}

/** Where the last-good snapshot of a configuration's source lives. */
function lastGoodOf(config: StaticConfig): LastGood {
  return { path: config.store.snapshot, origin: sourceOrigin(config) };
}

/** Starts the configured routing source (the routes file or etcd), with its first table or the snapshot in force. */
function startRoutingSource(
  config: StaticConfig,
  applier: TableApplier,
  deps: { parser: RoutingParser; logger: Logger; metrics: Metrics; health: HealthRegistry },
): Promise<RoutingSource> {
  const etcd = config.store.etcd;
  return etcd === undefined
    ? startFileSource(config.store.file as string, applier, deps.parser, lastGoodOf(config), deps.logger)
    : startEtcdSource(etcd, applier, lastGoodOf(config), { logger: deps.logger, metrics: deps.metrics, node: config.node, health: deps.health });
}

/** The routing source as a part of a node: started (first table, then watching) and closed with it; reload and state for the admin API. */
export interface RoutingSourcePart {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void> | undefined;
  /** The admin reload: what happened, and the problems now shown. */
  reload(): Promise<{ result: string; errors: { key: string; message: string }[] }>;
  /** The source as the admin state shows it (`starting` until it has started). */
  state(): Record<string, unknown>;
}

/** The configured routing source as a part of a node (see RoutingSourcePart). */
export function routingSourcePart(
  config: StaticConfig,
  applier: TableApplier,
  deps: { parser: RoutingParser; logger: Logger; metrics: Metrics; health: HealthRegistry },
): RoutingSourcePart {
  let source: RoutingSource | null = null;
  return {
    name: 'routing source',
    async start() {
      source = await startRoutingSource(config, applier, deps);
      source.watch();
    },
    stop: () => source?.close(),
    async reload() {
      const result = source === null ? 'unchanged' : await source.reload();
      return { result, errors: applier.issues.map((i) => ({ key: i.path, message: i.message })) };
    },
    state: () => source?.state() ?? { kind: config.store.etcd === undefined ? 'file' : 'etcd', starting: true },
  };
}
