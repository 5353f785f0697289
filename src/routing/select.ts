import type { Origin } from '../geo/origin.js';
import { pickFromGroups, type PickContext } from './balancer.js';
import type { Endpoint, Version } from './table.js';

export type { PickContext } from './balancer.js';

function firstUsable(version: Version, origin: Origin, ignoreHealth: boolean, ctx: PickContext): Endpoint | null {
  const endpoint = pickFromGroups(version.steering.candidates(origin), ignoreHealth, ctx);
  if (endpoint !== null) return endpoint;
  for (const other of version.fallbacks) {
    const fallback = pickFromGroups(other.steering.candidates(origin), ignoreHealth, ctx);
    if (fallback !== null) return fallback;
  }
  return null;
}

/**
 * Chooses the endpoint for a request (or for its next try): the chosen
 * version's regions in steering order, then its fallback versions; when nothing
 * healthy is left and the service says `whenAllDown: try-all`, the same walk
 * ignoring health. Drained, already tried and full endpoints are never chosen.
 * Null when nothing can take the request (`ctx.sawFull` tells whether limits were why).
 */
export function selectEndpoint(version: Version, origin: Origin, failWhenAllDown: boolean, ctx: PickContext): Endpoint | null {
  return firstUsable(version, origin, false, ctx) ?? (failWhenAllDown ? null : firstUsable(version, origin, true, ctx));
}
