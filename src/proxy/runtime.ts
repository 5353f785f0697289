import type { HealthRegistry } from '../health/registry.js';
import type { TableRuntime } from '../routing/compile.js';
import type { UpstreamRegistry } from './upstream.js';

/**
 * The runtime a node serving traffic binds its tables to: upstream pools and
 * health records, both shared across tables and kept by identity, so a table
 * swap reuses warm pools and never resets health.
 */
export function servingRuntime(upstreams: UpstreamRegistry, health: HealthRegistry): TableRuntime {
  return {
    upstream: (address, connectTimeoutMs) => upstreams.acquire(address, connectTimeoutMs),
    health: (address, check, slowStartMs) => health.acquire(address, check, slowStartMs),
    retain(endpoints) {
      upstreams.retain(endpoints.map((ep) => ep.upstream));
      health.retain(endpoints.map((ep) => ep.health));
    },
  };
}
