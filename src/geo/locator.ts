import { LRUCache } from 'lru-cache';
import type { NetworkEntry } from '../config/static-schema.js';
import { countryCentre } from './country-centre.js';
import { geoFacts } from './geo-record.js';
import { formatIp, type IpAddress } from '../net/ip.js';
import type { GeoDatabase } from './mmdb.js';
import { UNKNOWN_ORIGIN, type Origin } from './origin.js';
import { PrefixMap } from '../net/prefix-map.js';

/** An origin and the prefix length of the network that decided it (a DNS answer's ECS scope). */
export interface Located {
  readonly origin: Origin;
  readonly prefixLength: number;
}

/** An origin and the ECS scope of the answer chosen for it. */
export interface Decided {
  readonly origin: Origin;
  /**
   * The shortest prefix length of the address inside which every address gets
   * this origin (decided by the same network, database record or fallback).
   */
  readonly scope: number;
}

/** Addresses whose database answer is remembered. */
const CACHE_SIZE = 50_000;
/** Distinct database origins kept for reuse (steering memoises per origin object). */
const ORIGINS_LIMIT = 20_000;

/**
 * Maps a client address to an Origin: the `geo.networks` CIDR map first
 * (longest prefix wins), then the MaxMind database when one is configured.
 * Clients neither knows get the proxy's own origin, so steering falls back to
 * `node.location`, then to region order.
 */
export class Locator {
  /** The proxy's own origin (node.region / node.location). */
  readonly node: Origin;
  readonly #networks = new PrefixMap<Origin>();
  #database: GeoDatabase | null = null;
  readonly #cache = new LRUCache<number | bigint, Located>({ max: CACHE_SIZE });
  readonly #origins = new Map<string, Origin>();

  constructor(networks: readonly NetworkEntry[], node: { region?: string | undefined; location?: { lat: number; lon: number } | undefined }) {
    this.node =
      node.region === undefined && node.location === undefined
        ? UNKNOWN_ORIGIN
        : Object.freeze({ key: 'node', region: node.region ?? null, location: node.location ?? null });
    for (const entry of networks) {
      this.#networks.add(entry.cidr, Object.freeze({ key: entry.cidr.text, region: entry.region ?? null, location: entry.location ?? null }));
    }
  }

  /** Uses a MaxMind database after the CIDR map. */
  useDatabase(database: GeoDatabase): void {
    this.#database = database;
    this.forget();
  }

  /** Drops remembered database answers (the database was replaced). */
  forget(): void {
    this.#cache.clear();
    this.#origins.clear();
  }

  /** The origin of a client address; the node's origin when the address is unknown or unparsable. */
  locate(ip: IpAddress | null): Origin {
    if (ip === null) return this.node;
    return this.match(ip)?.origin ?? this.node;
  }

  /** The origin of an address and the prefix length of the network that decided it; null when nothing knows it. */
  match(ip: IpAddress): Located | null {
    if (this.#networks.size > 0) {
      const found = this.#networks.lookupMatch(ip);
      if (found !== undefined) return { origin: found.value, prefixLength: found.prefixLength };
    }
    if (this.#database === null) return null;
    const located = this.#databaseMatch(this.#database, ip);
    return located.origin === UNKNOWN_ORIGIN ? null : located;
  }

  /**
   * The origin of an address (the node's when nothing knows it) and how far it
   * holds: long enough to leave out every `geo.networks` block that does not
   * hold the address (a network nested in the one that matched, or one in the
   * unmatched space), and, for an address no block holds, the database network
   * it falls in. A database is a tree already split around nested networks,
   * so the prefix length of a lookup is a block of one record.
   */
  decide(ip: IpAddress): Decided {
    const networks = this.#networks.size > 0 ? this.#networks.uniformPrefix(ip) : 0;
    const found = this.#networks.size > 0 ? this.#networks.lookupMatch(ip) : undefined;
    if (found !== undefined) return { origin: found.value, scope: networks };
    if (this.#database === null) return { origin: this.node, scope: networks };
    const located = this.#databaseMatch(this.#database, ip);
    return { origin: located.origin === UNKNOWN_ORIGIN ? this.node : located.origin, scope: Math.max(networks, located.prefixLength) };
  }

  #databaseMatch(database: GeoDatabase, ip: IpAddress): Located {
    const cached = this.#cache.get(ip.value);
    if (cached !== undefined) return cached;
    const located = this.#fromDatabase(database, ip);
    this.#cache.set(ip.value, located);
    return located;
  }

  /**
   * Looks the address up in the database. A point wins; a country alone
   * becomes an origin carrying the country (steering prefers a region listing
   * it) at the country's centre. Unknown addresses are remembered as
   * UNKNOWN_ORIGIN, with the prefix length of the empty network.
   */
  #fromDatabase(database: GeoDatabase, ip: IpAddress): Located {
    const { record, prefixLength } = database.lookup(formatIp(ip));
    const facts = geoFacts(record);
    let key: string;
    let make: () => Origin;
    if (facts.location !== null) {
      const { lat, lon } = facts.location;
      key = `mmdb:${lat},${lon}`;
      make = () => ({ key, region: null, location: Object.freeze({ lat, lon }) });
    } else if (facts.country !== null) {
      const country = facts.country;
      key = `mmdb:${country}`;
      make = () => ({ key, region: null, location: countryCentre(country), country });
    } else {
      return { origin: UNKNOWN_ORIGIN, prefixLength };
    }
    let origin = this.#origins.get(key);
    if (origin === undefined) {
      if (this.#origins.size >= ORIGINS_LIMIT) this.#origins.clear();
      origin = Object.freeze(make());
      this.#origins.set(key, origin);
    }
    return { origin, prefixLength };
  }
}
