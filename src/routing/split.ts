import { randomBytes } from 'node:crypto';
import { hash32, seedOf } from './hash.js';
import { rawCookie, rawHeader } from './raw-headers.js';

/** Sticky keys are hashed into this many buckets; weights map to bucket ranges. */
export const BUCKETS = 10_000;

/** A year: how long a generated sticky cookie lasts. */
const STICKY_COOKIE_MAX_AGE_S = 31_536_000;

/** Where the sticky key comes from. */
export type StickySource = { readonly cookie: string } | { readonly header: string };

/** The outcome of a split decision. */
export interface SplitChoice<V> {
  readonly version: V;
  /** A Set-Cookie value to send when a sticky cookie was just assigned, else null. */
  readonly setCookie: string | null;
}

/**
 * Splits traffic between versions by integer weights (any total).
 *
 * Versions, sorted by name, own consecutive ranges of 10,000 buckets sized by
 * weight. A sticky key always hashes to the same bucket, so it keeps its version
 * while weights are unchanged; and when one version's weight grows while the
 * others do not, its range only widens, so keys already on it stay (monotone).
 * Keys are hashed with the service name as salt, so the same users are not the
 * canary population of every service.
 */
export class VersionSplit<V extends { readonly name: string; readonly weight: number }> {
  readonly versions: readonly V[];
  readonly sticky: StickySource | null;
  readonly overrideHeader: string | null;
  /** Exclusive upper bucket bound of each version, in `versions` order. */
  readonly #bounds: Int32Array;
  readonly #byName: ReadonlyMap<string, V>;
  readonly #seed: number;
  /** The only choice when a single version exists and nothing can override it. */
  readonly #only: SplitChoice<V> | null;

  constructor(salt: string, versions: readonly V[], sticky: StickySource | null, overrideHeader: string | null) {
    this.versions = [...versions].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.sticky = sticky;
    this.overrideHeader = overrideHeader;
    this.#seed = seedOf(`${salt}\u0000`);
    this.#byName = new Map(this.versions.map((v) => [v.name, v]));
    const total = this.versions.reduce((sum, v) => sum + v.weight, 0);
    this.#bounds = new Int32Array(this.versions.length);
    let cumulative = 0;
    this.versions.forEach((v, i) => {
      cumulative += v.weight;
      this.#bounds[i] = total === 0 ? 0 : Math.round((BUCKETS * cumulative) / total);
    });
    const only = this.versions.length === 1 && overrideHeader === null ? this.versions[0] : undefined;
    this.#only = only === undefined ? null : Object.freeze({ version: only, setCookie: null });
  }

  /** The bucket (0..9999) a sticky key falls in. */
  bucketOf(key: string): number {
    return hash32(this.#seed, key) % BUCKETS;
  }

  /** The version owning a bucket. */
  versionForBucket(bucket: number): V {
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) if (bucket < (bounds[i] as number)) return this.versions[i] as V;
    return this.versions[this.versions.length - 1] as V;
  }

  /** A version by name (for the override header), or undefined. */
  byName(name: string): V | undefined {
    return this.#byName.get(name);
  }

  /** Chooses the version for a request (its raw headers): override header, then sticky key, then a random bucket. */
  choose(rawHeaders: readonly string[]): SplitChoice<V> {
    if (this.#only !== null) return this.#only;
    if (this.overrideHeader !== null) {
      const forced = rawHeader(rawHeaders, this.overrideHeader);
      const version = forced === undefined ? undefined : this.#byName.get(forced.trim());
      if (version !== undefined) return { version, setCookie: null };
    }
    const sticky = this.sticky;
    if (sticky === null) return { version: this.versionForBucket((Math.random() * BUCKETS) | 0), setCookie: null };
    if ('header' in sticky) {
      const key = rawHeader(rawHeaders, sticky.header);
      const bucket = key === undefined || key === '' ? (Math.random() * BUCKETS) | 0 : this.bucketOf(key);
      return { version: this.versionForBucket(bucket), setCookie: null };
    }
    const existing = rawCookie(rawHeaders, sticky.cookie);
    if (existing !== null && existing !== '') return { version: this.versionForBucket(this.bucketOf(existing)), setCookie: null };
    const key = randomBytes(8).toString('hex');
    return {
      version: this.versionForBucket(this.bucketOf(key)),
      setCookie: `${sticky.cookie}=${key}; Path=/; Max-Age=${STICKY_COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax`,
    };
  }
}
