import type { Answer, SoaAnswer } from 'dns-packet';
import { parseIp, type IpAddress } from '../net/ip.js';
import type { Decided, Locator } from '../geo/locator.js';
import type { Origin } from '../geo/origin.js';
import { chooseAnswerRegion, type RegionChoice } from '../routing/select.js';
import type { RegionGroup, RoutingTable, Version } from '../routing/table.js';
import type { Zone, ZoneSet } from './zones.js';
import { RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_SERVFAIL } from './rcodes.js';

/** No answer is cached for less than this (seconds), degraded or not. */
export const MIN_TTL_S = 5;
/** TTL of the apex NS records (seconds): they change only with the static configuration. */
const NS_TTL_S = 3600;


/** Who asks: the client subnet (or the source address) the answer is chosen for. */
export interface Asker {
  readonly ip: IpAddress | null;
  /** The ECS source prefix length, null when the query had no client subnet. */
  readonly sourcePrefixLength: number | null;
}

/** An authoritative answer, before it becomes a message. */
export interface AuthorityAnswer {
  readonly rcode: number;
  readonly answers: Answer[];
  readonly authorities: Answer[];
  /** ECS scope prefix length: the shortest prefix of the client's address inside which every address gets this answer. */
  readonly scope: number;
  /** The region answered with, for logs and tests. */
  readonly region: string | null;
  /** Whether the same question may get this answer again while table and health stay (not for random or latency steering). */
  readonly cacheable: boolean;
  /** The origin the answer was chosen for, when it depends on the asker; else null. */
  readonly origin: Origin | null;
}

/** Where the authority reads the routing table in force. */
export interface TableSource {
  readonly current: RoutingTable | null;
}

function hasV4(group: RegionGroup): boolean {
  return group.region.edge.ipv4.length > 0;
}

function hasV6(group: RegionGroup): boolean {
  return group.region.edge.ipv6.length > 0;
}

/**
 * Answers for the configured zones from the routing table: SOA and NS at each
 * apex, A/AAAA for route hosts with the edge addresses of the region a request
 * from the asker would be sent to (the same choice the proxy makes), NODATA for
 * names that exist without the asked type, NXDOMAIN for the rest.
 */
export class Authority {
  readonly #zones: ZoneSet;
  readonly #tables: TableSource;
  readonly #locator: Locator;
  readonly #ttlS: number;

  constructor(zones: ZoneSet, tables: TableSource, locator: Locator, ttlMs: number) {
    this.#zones = zones;
    this.#tables = tables;
    this.#locator = locator;
    this.#ttlS = Math.max(MIN_TTL_S, Math.round(ttlMs / 1000));
  }

  /** The origin of a source address, as answers without a client subnet are chosen for. */
  originOf(peer: string): Origin {
    return this.#locator.locate(parseIp(peer));
  }

  /** The zone holding a lowercase name, or null when Meridian is not authoritative for it. */
  zoneOf(name: string): Zone | null {
    return this.#zones.find(name);
  }

  /**
   * Answers a question inside `zone`. `owner` is the name as asked (its case is
   * echoed), `name` its lowercase form; `type` is a dns-packet type name.
   */
  answer(zone: Zone, owner: string, name: string, type: string, asker: Asker): AuthorityAnswer {
    const table = this.#tables.current;
    const soa = this.#soa(zone, table);
    const fixed = { scope: 0, region: null, cacheable: true, origin: null };
    const empty = (rcode: number): AuthorityAnswer => ({ ...fixed, rcode, answers: [], authorities: [soa] });
    if (table === null) return { ...fixed, rcode: RCODE_SERVFAIL, answers: [], authorities: [], cacheable: false };
    const route = table.matcher.routeForHost(name);
    if (name === zone.name) {
      if (type === 'SOA' || type === 'ANY') return { ...fixed, rcode: RCODE_NOERROR, answers: [{ ...soa, name: owner }], authorities: [] };
      if (type === 'NS') {
        return { ...fixed, rcode: RCODE_NOERROR, answers: zone.nameservers.map((ns) => ({ name: owner, type: 'NS', ttl: NS_TTL_S, data: ns })), authorities: [] };
      }
    }
    if (route === null) return empty(name === zone.name || table.matcher.hasHostsBelow(name) ? RCODE_NOERROR : RCODE_NXDOMAIN);
    const service = route.service;
    if (type === 'A' || type === 'AAAA' || type === 'ANY') {
      const v4 = type !== 'AAAA';
      const accepts = v4 ? hasV4 : hasV6;
      const versions = service.split.versions;
      // Every version of a service is steered the same way (the service's `steering`).
      const steering = (versions[0] as Version).steering;
      const decided = this.#decide(asker);
      const origin = decided.origin;
      let choice: RegionChoice | null = chooseAnswerRegion(versions, origin, service.failWhenAllDown, accepts);
      let family = v4;
      if (choice === null && type === 'ANY') {
        choice = chooseAnswerRegion(versions, origin, service.failWhenAllDown, hasV6);
        family = false;
      }
      const dependsOnOrigin = steering.usesOrigin;
      const scope = dependsOnOrigin ? decided.scope : 0;
      const steered = { scope, cacheable: steering.kind === 'nearest' || steering.kind === 'failover', origin: dependsOnOrigin ? origin : null };
      if (choice === null) {
        const anyRegion = versions.some((v) => v.groups.some(accepts));
        return anyRegion ? { ...empty(RCODE_SERVFAIL), ...steered, authorities: [] } : { ...empty(RCODE_NOERROR), ...steered };
      }
      const ttl = choice.degraded ? Math.max(MIN_TTL_S, Math.floor(this.#ttlS / 2)) : this.#ttlS;
      const region = choice.group.region;
      const addresses = family ? region.edge.ipv4 : region.edge.ipv6;
      const answers: Answer[] = addresses.map((data) => ({ name: owner, type: family ? 'A' : 'AAAA', ttl, data }));
      return { ...steered, rcode: RCODE_NOERROR, answers, authorities: [], region: region.name };
    }
    return empty(RCODE_NOERROR);
  }

  /**
   * The asker's origin, and with a client subnet the ECS scope of the answer
   * (RFC 7871 7.2.1): a /0 subnet asks not to be located, so it gets the node's
   * answer, which holds for every /0 question (scope 0).
   */
  #decide(asker: Asker): Decided {
    if (asker.ip === null) return { origin: this.#locator.node, scope: 0 };
    if (asker.sourcePrefixLength === null) return { origin: this.#locator.locate(asker.ip), scope: 0 };
    return this.#locator.decide(asker.ip);
  }

  #soa(zone: Zone, table: RoutingTable | null): SoaAnswer {
    return {
      name: zone.name,
      type: 'SOA',
      ttl: this.#ttlS,
      data: {
        mname: zone.nameservers[0] as string,
        rname: `hostmaster.${zone.name}`,
        // The serial follows the routing table, so secondaries and caches see every change.
        serial: (table?.revision ?? 0) >>> 0,
        refresh: 3600,
        retry: 600,
        expire: 604800,
        minimum: this.#ttlS,
      },
    };
  }
}
