import type { Dispatcher } from 'undici';
import type { HealthRegistry } from '../health/registry.js';
import type { TableRuntime } from '../routing/compile.js';
import type { UpstreamLink } from '../routing/table.js';

/** An upstream as the control plane knows it: no pool, no load; requests are the workers' business. */
class ControlUpstream implements UpstreamLink {
  outstanding = 0;
  latencyMs = Number.NaN;

  get pool(): Dispatcher {
    throw new Error('the control plane never sends requests');
  }

  recordLatency(): void {
    // Workers measure latency on their own pools.
  }
}

/**
 * The runtime a node's primary binds its tables to: real health records (the
 * active checks run here, once per node) and upstreams without pools.
 */
export function controlRuntime(health: HealthRegistry): TableRuntime {
  const upstream = new ControlUpstream();
  return {
    upstream: () => upstream,
    health: (address, check, slowStartMs) => health.acquire(address, check, slowStartMs),
    retain: (endpoints) => health.retain(endpoints.map((ep) => ep.health)),
  };
}
