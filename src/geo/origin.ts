import type { Location } from './distance.js';

/**
 * Where a request comes from, as far as steering cares: a known region, a point,
 * or both. Origins are long-lived objects, so steering can memoise per origin.
 */
export interface Origin {
  /** Stable description for logs and state (`10.1.0.0/16`, `node`). */
  readonly key: string;
  readonly region: string | null;
  readonly location: Location | null;
}

/** The origin of a request nothing is known about. */
export const UNKNOWN_ORIGIN: Origin = Object.freeze({ key: 'unknown', region: null, location: null });
