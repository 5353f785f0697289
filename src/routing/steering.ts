import { distanceKm, type Location } from '../geo/distance.js';
import type { Origin } from '../geo/origin.js';
import type { Region, RegionGroup, RegionSteering } from './table.js';

export type { RegionSteering } from './table.js';

/** What steering knows besides the groups: the proxy's own origin and the table's regions. */
export interface SteeringContext {
  readonly node: Origin;
  readonly regions: ReadonlyMap<string, Region>;
}

/** Memo entries kept per version before the memo is cleared (origins are few; this bounds a pathological map). */
const MEMO_LIMIT = 4096;
/** How long a latency ordering is reused before it is recomputed. */
const LATENCY_REORDER_MS = 500;

interface ResolvedOrigin {
  readonly region: string | null;
  readonly point: Location | null;
}

/** The first region (declaration order) that lists the country, or null. */
function regionOfCountry(country: string, regions: ReadonlyMap<string, Region>): Region | null {
  for (const region of regions.values()) if (region.countries.includes(country)) return region;
  return null;
}

/**
 * Where an origin is, as steering ranks regions: its own region when the table
 * has it; for a country-only origin, the first region listing that country
 * (ranked from that region's location), else the country's centre.
 */
function resolve(origin: Origin, regions: ReadonlyMap<string, Region>): ResolvedOrigin | null {
  if (origin.region !== null && regions.has(origin.region)) {
    return { region: origin.region, point: origin.location ?? (regions.get(origin.region) as Region).location };
  }
  const listing = origin.country === undefined ? null : regionOfCountry(origin.country, regions);
  if (listing !== null) return { region: listing.name, point: listing.location };
  return origin.location === null ? null : { region: null, point: origin.location };
}

/** Nearest first: the origin's own region, then by great-circle distance, then declaration order. */
export function nearestOrder(groups: readonly RegionGroup[], origin: Origin, ctx: SteeringContext): RegionGroup[] {
  const where = resolve(origin, ctx.regions) ?? resolve(ctx.node, ctx.regions);
  const rank = (g: RegionGroup): number => {
    if (where === null) return 0;
    if (g.region.name === where.region) return -1;
    return where.point === null ? 0 : distanceKm(where.point, g.region.location);
  };
  return groups
    .map((g) => ({ g, r: rank(g) }))
    .sort((a, b) => a.r - b.r || a.g.region.index - b.g.region.index)
    .map((x) => x.g);
}

class NearestSteering implements RegionSteering {
  readonly kind = 'nearest';
  readonly usesOrigin = true;
  readonly #memo = new Map<Origin, readonly RegionGroup[]>();

  constructor(
    private readonly groups: readonly RegionGroup[],
    private readonly ctx: SteeringContext,
  ) {}

  candidates(origin: Origin): readonly RegionGroup[] {
    let order = this.#memo.get(origin);
    if (order === undefined) {
      if (this.#memo.size >= MEMO_LIMIT) this.#memo.clear();
      order = Object.freeze(nearestOrder(this.groups, origin, this.ctx));
      this.#memo.set(origin, order);
    }
    return order;
  }
}

function groupLatency(g: RegionGroup): number {
  let best = Number.POSITIVE_INFINITY;
  for (const ep of g.endpoints) if (ep.upstream.latencyMs < best) best = ep.upstream.latencyMs;
  return best;
}

/** Lowest measured response time first; regions not yet measured follow, nearest to this proxy first. */
class LatencySteering implements RegionSteering {
  readonly kind = 'latency';
  readonly usesOrigin = false;
  readonly #fallback: readonly RegionGroup[];
  #order: readonly RegionGroup[];
  #orderedAt = 0;

  constructor(groups: readonly RegionGroup[], ctx: SteeringContext) {
    this.#fallback = nearestOrder(groups, ctx.node, ctx);
    this.#order = this.#fallback;
  }

  candidates(): readonly RegionGroup[] {
    const now = Date.now();
    if (now - this.#orderedAt >= LATENCY_REORDER_MS) {
      this.#orderedAt = now;
      const rank = new Map(this.#fallback.map((g, i) => [g, { latency: groupLatency(g), i }]));
      this.#order = Object.freeze(
        [...this.#fallback].sort((a, b) => {
          const ra = rank.get(a) as { latency: number; i: number };
          const rb = rank.get(b) as { latency: number; i: number };
          return ra.latency === rb.latency ? ra.i - rb.i : ra.latency < rb.latency ? -1 : 1;
        }),
      );
    }
    return this.#order;
  }
}

/** The explicit order of `failover`; regions it does not list follow in declaration order. */
class FailoverSteering implements RegionSteering {
  readonly kind = 'failover';
  readonly usesOrigin = false;
  readonly #order: readonly RegionGroup[];

  constructor(groups: readonly RegionGroup[], order: readonly string[]) {
    const position = (g: RegionGroup): number => {
      const i = order.indexOf(g.region.name);
      return i < 0 ? order.length + g.region.index : i;
    };
    this.#order = Object.freeze([...groups].sort((a, b) => position(a) - position(b)));
  }

  candidates(): readonly RegionGroup[] {
    return this.#order;
  }
}

/**
 * Traffic dials: the first region is drawn by `regionWeights`; the rest follow by
 * weight as fallbacks. One precomputed order per possible first region.
 */
class WeightedSteering implements RegionSteering {
  readonly kind = 'weighted';
  readonly usesOrigin = false;
  readonly #orders: (readonly RegionGroup[])[] = [];
  readonly #cumulative: number[] = [];
  readonly #total: number;

  constructor(groups: readonly RegionGroup[], weights: Readonly<Record<string, number>>) {
    const w = (g: RegionGroup): number => weights[g.region.name] ?? 0;
    const byWeight = [...groups].sort((a, b) => w(b) - w(a) || a.region.index - b.region.index);
    let total = 0;
    for (const first of byWeight) {
      if (w(first) === 0) continue;
      total += w(first);
      this.#cumulative.push(total);
      this.#orders.push(Object.freeze([first, ...byWeight.filter((g) => g !== first)]));
    }
    if (this.#orders.length === 0) this.#orders.push(Object.freeze(byWeight));
    this.#total = total;
  }

  candidates(): readonly RegionGroup[] {
    if (this.#orders.length === 1) return this.#orders[0] as readonly RegionGroup[];
    const draw = Math.random() * this.#total;
    let i = 0;
    while (draw >= (this.#cumulative[i] as number)) i++;
    return this.#orders[i] as readonly RegionGroup[];
  }
}

/** Builds the steering of one version from the service's settings. */
export function buildSteering(
  kind: RegionSteering['kind'],
  groups: readonly RegionGroup[],
  ctx: SteeringContext,
  settings: { failover?: readonly string[] | undefined; regionWeights?: Readonly<Record<string, number>> | undefined },
): RegionSteering {
  switch (kind) {
    case 'nearest':
      return new NearestSteering(groups, ctx);
    case 'latency':
      return new LatencySteering(groups, ctx);
    case 'failover':
      return new FailoverSteering(groups, settings.failover ?? []);
    case 'weighted':
      return new WeightedSteering(groups, settings.regionWeights ?? {});
  }
}
