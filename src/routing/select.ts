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

/** Where the client's steering puts `a` before `b`: in the heaviest version that has both, else declaration order. */
function ranksBefore(a: RegionGroup, b: RegionGroup, weighted: readonly Version[], origin: Origin): boolean {
  let best: Version | null = null;
  for (const v of weighted) {
    if (best !== null && v.weight <= best.weight) continue;
    if (v.groups.some((g) => g.region === a.region) && v.groups.some((g) => g.region === b.region)) best = v;
  }
  if (best !== null) {
    for (const g of best.steering.candidates(origin)) {
      if (g.region === a.region) return true;
      if (g.region === b.region) return false;
    }
  }
  return a.region.index < b.region.index;
}

/**
 * The region GeoDNS answers a client with: the edge its browser connects to
 * before HTTP at that edge splits its requests by version. It is the region
 * that would serve the largest share of the client's requests: every version
 * with weight above 0 adds its weight to the region `chooseRegion` picks for it
 * (the walk HTTP makes for a request of that version); a tie goes to the region
 * the client's steering ranks first (in the heaviest version serving both), so
 * a canary living in one region never pulls every client there. Degraded when
 * any version's pick of the winner was. Null when no version has a region.
 */
export function chooseAnswerRegion(versions: readonly Version[], origin: Origin, failWhenAllDown: boolean, accepts: (group: RegionGroup) => boolean): RegionChoice | null {
  const weighted = versions.filter((v) => v.weight > 0);
  if (weighted.length === 1) return chooseRegion(weighted[0] as Version, origin, failWhenAllDown, accepts);
  const shares = new Map<RegionGroup['region'], { group: RegionGroup; weight: number; degraded: boolean }>();
  for (const v of weighted) {
    const choice = chooseRegion(v, origin, failWhenAllDown, accepts);
    if (choice === null) continue;
    const share = shares.get(choice.group.region);
    if (share === undefined) shares.set(choice.group.region, { group: choice.group, weight: v.weight, degraded: choice.degraded });
    else {
      share.weight += v.weight;
      share.degraded ||= choice.degraded;
    }
  }
  let best: { group: RegionGroup; weight: number; degraded: boolean } | null = null;
  for (const share of shares.values()) {
    if (best === null || share.weight > best.weight || (share.weight === best.weight && ranksBefore(share.group, best.group, weighted, origin))) best = share;
  }
  return best === null ? null : { group: best.group, degraded: best.degraded };
}
