import { RANK_DOWN, RANK_HEALTHY } from '../health/endpoint-health.js';
import type { Endpoint, RegionGroup } from './table.js';

/** How one request chooses: what it has tried, whether health counts, and what it ran into. */
export interface PickContext {
  /** Endpoints this request already tried: never chosen again. Null when none. */
  exclude: Endpoint[] | null;
  /** Set when an endpoint was passed over because it is at its concurrency limit. */
  sawFull: boolean;
}

/** Whether an endpoint can take this request; notes limit hits in the context. */
function usable(ep: Endpoint, ignoreHealth: boolean, ctx: PickContext): boolean {
  if (!ignoreHealth && ep.health.rank === RANK_DOWN) return false;
  if (ctx.exclude !== null && ctx.exclude.includes(ep)) return false;
  if (ep.upstream.outstanding >= ep.maxConcurrent) {
    ctx.sawFull = true;
    return false;
  }
  return true;
}

/** Load per unit of (effective) weight: what least-outstanding-requests compares. */
function load(ep: Endpoint, now: number): number {
  const ramp = ep.health.rampUntil === 0 ? 1 : ep.health.rampFactor(now);
  return ep.upstream.outstanding / (ep.weight * ramp);
}

function indexAt(cumulative: Float64Array, draw: number): number {
  let i = 0;
  while (draw >= (cumulative[i] as number)) i++;
  return i;
}

/** A weighted random index. */
function weightedIndex(group: RegionGroup): number {
  const cumulative = group.cumulativeWeights;
  return indexAt(cumulative, Math.random() * (cumulative[cumulative.length - 1] as number));
}

/** A weighted random index other than `excluded`: drawn from the remaining weight. */
function weightedIndexExcept(group: RegionGroup, excluded: number): number {
  const cumulative = group.cumulativeWeights;
  const start = excluded === 0 ? 0 : (cumulative[excluded - 1] as number);
  const width = (cumulative[excluded] as number) - start;
  let draw = Math.random() * ((cumulative[cumulative.length - 1] as number) - width);
  if (draw >= start) draw += width;
  return indexAt(cumulative, draw);
}

/**
 * During slow start an endpoint wins a draw only with probability equal to its
 * ramp factor, so it gets a growing share even when the region is idle.
 */
function admits(ep: Endpoint, now: number): boolean {
  return ep.health.rampUntil === 0 || Math.random() < ep.health.rampFactor(now);
}

/** The least loaded usable endpoint, healthy ones before unchecked ones. */
function scan(eps: readonly Endpoint[], ignoreHealth: boolean, ctx: PickContext, now: number): Endpoint | null {
  let best: Endpoint | null = null;
  let bestTier = 0;
  let bestLoad = 0;
  for (const ep of eps) {
    if (!usable(ep, ignoreHealth, ctx)) continue;
    const tier = ignoreHealth ? 0 : ep.health.rank;
    const l = load(ep, now);
    if (best === null || tier < bestTier || (tier === bestTier && l < bestLoad)) {
      best = ep;
      bestTier = tier;
      bestLoad = l;
    }
  }
  return best;
}

/** An endpoint's tier for this pick: its health rank, 0 when health is ignored, RANK_DOWN when it cannot take the request. */
function tierOf(ep: Endpoint, ignoreHealth: boolean, ctx: PickContext): number {
  if (!usable(ep, ignoreHealth, ctx)) return RANK_DOWN;
  return ignoreHealth ? RANK_HEALTHY : ep.health.rank;
}

function anyHealthy(eps: readonly Endpoint[]): boolean {
  for (const ep of eps) if (ep.health.rank === RANK_HEALTHY) return true;
  return false;
}

/**
 * Power of two choices: draw two distinct endpoints by weight, send to the one
 * with less outstanding work per unit of weight; on a tie (an idle region) the
 * first draw wins, so idle traffic follows the weights exactly. Unchecked
 * endpoints compete only where nothing in the region is healthy; when the
 * draws are not comparable, a scan picks the least loaded of the best tier.
 * Null when nothing can take the request.
 */
export function pickEndpoint(group: RegionGroup, ignoreHealth: boolean, ctx: PickContext): Endpoint | null {
  const eps = group.endpoints;
  const n = eps.length;
  if (n === 0) return null;
  if (n === 1) {
    const only = eps[0] as Endpoint;
    return usable(only, ignoreHealth, ctx) ? only : null;
  }
  const now = Date.now();
  const i = weightedIndex(group);
  const a = eps[i] as Endpoint;
  const b = eps[weightedIndexExcept(group, i)] as Endpoint;
  const ta = tierOf(a, ignoreHealth, ctx);
  const tb = tierOf(b, ignoreHealth, ctx);
  if (ta === tb && ta !== RANK_DOWN && (ta === RANK_HEALTHY || !anyHealthy(eps))) {
    const first = load(b, now) < load(a, now) ? b : a;
    const second = first === a ? b : a;
    return admits(first, now) ? first : second;
  }
  if (ta === RANK_HEALTHY && admits(a, now)) return a;
  if (tb === RANK_HEALTHY && admits(b, now)) return b;
  return scan(eps, ignoreHealth, ctx, now);
}

/** The first endpoint that can take the request, walking region groups in steering order. */
export function pickFromGroups(groups: readonly RegionGroup[], ignoreHealth: boolean, ctx: PickContext): Endpoint | null {
  for (const group of groups) {
    const ep = pickEndpoint(group, ignoreHealth, ctx);
    if (ep !== null) return ep;
  }
  return null;
}
