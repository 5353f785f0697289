import type { StaticConfig } from '../config/static-schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createEtcdClient } from '../store/etcd-client.js';
import { RolloutNode } from './node-part.js';
import { RolloutRecorder } from './recorder.js';
import type { StepReport } from './step-stats.js';
import type { RolloutSpec } from '../config/rollout-schema.js';

/** Where the counts come from on a node whose workers serve: their reports, and how they learn the rollouts. */
export interface CountingProcesses {
  reports(): readonly StepReport[];
  follow(rollouts: ReadonlyMap<string, RolloutSpec>): void;
}

/** A node's rollout part, started and stopped with it; absent in file mode (rollouts live in etcd). */
export interface RolloutPart {
  readonly name: string;
  /** What this process's proxy hands each exchange's outcome to (null: the workers count). */
  readonly recorder: RolloutRecorder | null;
  start(): void;
  stop(): Promise<void>;
  state(): Record<string, unknown>;
  errors(): { key: string; message: string }[];
}

/**
 * The rollout part of an etcd-mode node (its own etcd client beside the
 * store's), or null in file mode. Counts come from this process's proxy, or
 * from `processes` (a primary's workers).
 */
export function rolloutPart(config: StaticConfig, metrics: Metrics, logger: Logger, processes: CountingProcesses | null = null): RolloutPart | null {
  const etcd = config.store.etcd;
  if (etcd === undefined) return null;
  const recorder = processes === null ? new RolloutRecorder() : null;
  const client = createEtcdClient(etcd);
  const name = config.node.name;
  const reports = (): readonly StepReport[] => recorder?.reports(name) ?? processes?.reports() ?? [];
  const follow = (specs: ReadonlyMap<string, RolloutSpec>): void => (recorder === null ? processes?.follow(specs) : recorder.track(specs));
  const node = new RolloutNode({ client, prefix: etcd.prefix, node: name, reports, onRollouts: follow, metrics: metrics.etcd, logger });
  return {
    name: 'rollouts',
    recorder,
    start: () => node.start(),
    async stop() {
      await node.close();
      client.close();
    },
    state: () => node.state(),
    errors: () => node.state().errors.map((i) => ({ key: i.path, message: i.message })),
  };
}
