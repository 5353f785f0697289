import type { HostPort } from '../config/address.js';
import { formatHostPort } from '../config/address.js';
import type { ServiceSpec } from '../config/routing-schema.js';
import { EndpointHealth } from './endpoint-health.js';

/** The check settings that, with the address, identify an endpoint's health. */
export type HealthCheckSpec = ServiceSpec['healthCheck'];

/** The identity of an endpoint for health purposes: address plus check settings. */
export function healthKey(address: HostPort, check: HealthCheckSpec): string {
  return `${formatHostPort(address)} ${check.path} ${check.interval}/${check.timeout} ${check.healthyThreshold}/${check.unhealthyThreshold}`;
}

/**
 * Health of every endpoint, keyed by identity and kept outside the routing table,
 * so a routing-table change never resets it. Until active checking runs, every
 * endpoint counts as healthy (state `unchecked`).
 */
export class HealthRegistry {
  readonly #entries = new Map<string, EndpointHealth>();

  /** The health record for an endpoint identity, created on first use. */
  acquire(address: HostPort, check: HealthCheckSpec): EndpointHealth {
    const key = healthKey(address, check);
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = new EndpointHealth(key);
      this.#entries.set(key, entry);
    }
    return entry;
  }

  /** Forgets identities no longer used by the routing table in force. */
  retain(inUse: Iterable<EndpointHealth>): void {
    const keep = new Set(inUse);
    for (const [key, entry] of this.#entries) if (!keep.has(entry)) this.#entries.delete(key);
  }

  /** Number of identities tracked. */
  get size(): number {
    return this.#entries.size;
  }
}
