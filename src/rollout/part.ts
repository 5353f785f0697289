import type { StaticConfig } from '../config/static-schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createEtcdClient } from '../store/etcd-client.js';
import { RolloutNode } from './node-part.js';
import { RolloutRecorder } from './recorder.js';

/** A node's rollout part, started and stopped with it; absent in file mode (rollouts live in etcd). */
export interface RolloutPart {
  readonly name: string;
  /** What the proxy hands each exchange's outcome to. */
  readonly recorder: RolloutRecorder;
  start(): void;
  stop(): Promise<void>;
  state(): Record<string, unknown>;
  errors(): { key: string; message: string }[];
}

/** The rollout part of an etcd-mode node (its own etcd client beside the store's), or null in file mode. */
export function rolloutPart(config: StaticConfig, metrics: Metrics, logger: Logger): RolloutPart | null {
  const etcd = config.store.etcd;
  if (etcd === undefined) return null;
  const recorder = new RolloutRecorder();
  const client = createEtcdClient(etcd);
  const node = new RolloutNode({ client, prefix: etcd.prefix, node: config.node.name, reports: recorder, metrics: metrics.etcd, logger });
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
