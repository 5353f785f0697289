import type { Endpoint, RegionGroup } from './table.js';

function usable(ep: Endpoint, ignoreHealth: boolean): boolean {
  return ignoreHealth || ep.health.up;
}

/** Load per unit of weight: what least-outstanding-requests compares. */
function load(ep: Endpoint): number {
  return ep.upstream.outstanding / ep.weight;
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
 * Power of two choices: draw two distinct endpoints by weight, send to the one
 * with less outstanding work per unit of weight; on a tie (an idle region) the
 * first draw wins, so idle traffic follows the weights exactly. Falls back to a
 * scan when a drawn endpoint is unhealthy. Null when no endpoint can take the request.
 */
export function pickEndpoint(group: RegionGroup, ignoreHealth = false): Endpoint | null {
  const eps = group.endpoints;
  const n = eps.length;
  if (n === 0) return null;
  if (n === 1) {
    const only = eps[0] as Endpoint;
    return usable(only, ignoreHealth) ? only : null;
  }
  const i = weightedIndex(group);
  const j = weightedIndexExcept(group, i);
  const a = eps[i] as Endpoint;
  const b = eps[j] as Endpoint;
  const aOk = usable(a, ignoreHealth);
  const bOk = usable(b, ignoreHealth);
  if (aOk && bOk) return load(b) < load(a) ? b : a;
  if (aOk) return a;
  if (bOk) return b;
  let best: Endpoint | null = null;
  for (const ep of eps) if (usable(ep, ignoreHealth) && (best === null || load(ep) < load(best))) best = ep;
  return best;
}

/** The first endpoint that can take the request, walking region groups in steering order. */
export function pickFromGroups(groups: readonly RegionGroup[], ignoreHealth = false): Endpoint | null {
  for (const group of groups) {
    const ep = pickEndpoint(group, ignoreHealth);
    if (ep !== null) return ep;
  }
  return null;
}
