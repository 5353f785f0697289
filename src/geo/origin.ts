import type { Location } from './distance.js';

/**
 * Where a request comes from, as far as steering cares: a known region, a point,
 * a country, or some of these. Origins are long-lived objects, so steering can
 * memoise per origin.
 */
export interface Origin {
  /** Stable description for logs and state (`10.1.0.0/16`, `node`, `mmdb:IE`). */
  readonly key: string;
  readonly region: string | null;
  readonly location: Location | null;
  /**
   * ISO 3166-1 alpha-2 code, set only when geo data knew the country but not a
   * point: steering then prefers a region listing that country, and `location`
   * is the country's centre.
   */
  readonly country?: string;
}

/** The origin of a request nothing is known about. */
export const UNKNOWN_ORIGIN: Origin = Object.freeze({ key: 'unknown', region: null, location: null });
