import type { Origin } from '../geo/origin.js';
import { pickFromGroups, type PickContext } from './balancer.js';
import { RANK_DOWN, RANK_HEALTHY } from '../health/endpoint-health.js';
import type { Endpoint, RegionGroup, Version } from './table.js';

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

/** The region a client would be sent to, for answers given ahead of any request (GeoDNS). */
export interface RegionChoice {
  readonly group: RegionGroup;
  /**
   * Not the client's first choice, or some of the region's endpoints are not
   * healthy, or nothing was healthy at all: answers about it should be short-lived.
   */
  readonly degraded: boolean;
}

function servesSomething(group: RegionGroup): boolean {
  for (const ep of group.endpoints) if (ep.health.rank !== RANK_DOWN) return true;
  return false;
}

function allHealthy(group: RegionGroup): boolean {
  for (const ep of group.all) if (ep.drain || ep.health.rank !== RANK_HEALTHY) return false;
  return true;
}

/**
 * The first region that passes `accepts` and has an endpoint a request could be
 * sent to, in the same walk `selectEndpoint` makes: the version's steering
 * order, then its fallback versions. When none is left and the service says
 * `whenAllDown: try-all`, the first accepted region ignoring health. Null when
 * nothing qualifies.
 */
export function chooseRegion(version: Version, origin: Origin, failWhenAllDown: boolean, accepts: (group: RegionGroup) => boolean): RegionChoice | null {
  let first = true;
  let lastResort: RegionGroup | null = null;
  for (const v of [version, ...version.fallbacks]) {
    for (const group of v.steering.candidates(origin)) {
      if (!accepts(group)) continue;
      if (group.endpoints.length > 0) lastResort ??= group;
      if (servesSomething(group)) return { group, degraded: !first || !allHealthy(group) };
      first = false;
    }
  }
  return lastResort === null || failWhenAllDown ? null : { group: lastResort, degraded: true };
}
