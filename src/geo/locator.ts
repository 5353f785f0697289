import type { NetworkEntry } from '../config/static-schema.js';
import type { IpAddress } from './ip.js';
import { UNKNOWN_ORIGIN, type Origin } from './origin.js';
import { PrefixMap } from './prefix-map.js';

/**
 * Maps a client address to an Origin. For now the `geo.networks` CIDR map
 * (longest prefix wins); clients it does not know get the proxy's own origin,
 * so steering falls back to `node.location`, then to region order.
 */
export class Locator {
  /** The proxy's own origin (node.region / node.location). */
  readonly node: Origin;
  readonly #networks = new PrefixMap<Origin>();

  constructor(networks: readonly NetworkEntry[], node: { region?: string | undefined; location?: { lat: number; lon: number } | undefined }) {
    this.node =
      node.region === undefined && node.location === undefined
        ? UNKNOWN_ORIGIN
        : Object.freeze({ key: 'node', region: node.region ?? null, location: node.location ?? null });
    for (const entry of networks) {
      this.#networks.add(entry.cidr, Object.freeze({ key: entry.cidr.text, region: entry.region ?? null, location: entry.location ?? null }));
    }
  }

  /** The origin of a client address; the node's origin when the address is unknown or unparsable. */
  locate(ip: IpAddress | null): Origin {
    if (ip === null || this.#networks.size === 0) return this.node;
    return this.#networks.lookup(ip) ?? this.node;
  }

  /** The matching network and its prefix length, for explanations in state and DNS scopes. */
  match(ip: IpAddress): { origin: Origin; prefixLength: number } | null {
    const found = this.#networks.lookupMatch(ip);
    return found === undefined ? null : { origin: found.value, prefixLength: found.prefixLength };
  }
}
