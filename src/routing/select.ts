import type { Origin } from '../geo/origin.js';
import { pickFromGroups } from './balancer.js';
import type { Endpoint, Version } from './table.js';

function firstUsable(version: Version, origin: Origin, ignoreHealth: boolean): Endpoint | null {
  const endpoint = pickFromGroups(version.steering.candidates(origin), ignoreHealth);
  if (endpoint !== null) return endpoint;
  for (const other of version.fallbacks) {
    const fallback = pickFromGroups(other.steering.candidates(origin), ignoreHealth);
    if (fallback !== null) return fallback;
  }
  return null;
}

/**
 * Chooses the endpoint for a request: the chosen version's regions in steering
 * order, then its fallback versions; when nothing healthy is left and the
 * service says `whenAllDown: try-all`, the same walk ignoring health.
 * Drained endpoints are never chosen. Null when nothing can take the request.
 */
export function selectEndpoint(version: Version, origin: Origin, failWhenAllDown: boolean): Endpoint | null {
  return firstUsable(version, origin, false) ?? (failWhenAllDown ? null : firstUsable(version, origin, true));
}
