import type { Answer, SoaAnswer } from 'dns-packet';
import { parseIp, type IpAddress } from '../net/ip.js';
import type { Decided, Locator } from '../geo/locator.js';
import type { Origin } from '../geo/origin.js';
import { chooseAnswerRegion, type RegionChoice } from '../routing/select.js';
import type { RegionGroup, RoutingTable, Version } from '../routing/table.js';
import type { HostAddresses, Zone, ZoneSet } from './zones.js';
import { RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_SERVFAIL } from './rcodes.js';

/** No answer is cached for less than this (seconds), degraded or not. */
export const MIN_TTL_S = 5;
/** The most names one answer goes through (the asked name and the CNAME targets Meridian answers for). */
const MAX_CHAIN = 8;
/** TTL of the apex NS records and of name server addresses (seconds): they change only with the static configuration. */
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
  /** Addresses of the name servers an NS answer names, when Meridian has them (RFC 1034 4.3.2). */
  readonly additionals?: Answer[];
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

function hasV4OrAlias(group: RegionGroup): boolean {
  return group.region.edge.ipv4.length > 0 || group.region.edge.cname !== null;
}

function hasV6OrAlias(group: RegionGroup): boolean {
  return group.region.edge.ipv6.length > 0 || group.region.edge.cname !== null;
}

/**
 * The regions that can answer a family: those with addresses of it or, except
 * at a zone apex, a cname. A CNAME cannot share the apex with the SOA and NS
 * (RFC 1034 3.6.2, RFC 2181 10.1), so there only addresses answer.
 */
function edgeFor(v4: boolean, apex: boolean): (group: RegionGroup) => boolean {
  if (apex) return v4 ? hasV4 : hasV6;
  return v4 ? hasV4OrAlias : hasV6OrAlias;
}

/** The records of a name server name for one question type: its A or AAAA set (ANY: the A set, else AAAA; RFC 8482), none for other types. */
function hostRecords(host: HostAddresses, owner: string, type: string): Answer[] {
  const v4 = type === 'A' || (type === 'ANY' && host.ipv4.length > 0);
  if (!v4 && type !== 'AAAA' && type !== 'ANY') return [];
  return (v4 ? host.ipv4 : host.ipv6).map((data) => ({ name: owner, type: v4 ? 'A' : 'AAAA', ttl: NS_TTL_S, data }));
}

/**
 * Answers for the configured zones from the routing table: SOA and NS at each
 * apex, A/AAAA for route hosts with the edge addresses of the region a request
 * from the asker would be sent to (the same choice the proxy makes), or that
 * region's CNAME when it has no address of the family, NODATA for names that
 * exist without the asked type, NXDOMAIN for the rest.
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
    return this.#answer(zone, owner, name, type, asker, null);
  }

  /** `chain`: the names this answer has gone through so far, the asked one first; null until a CNAME is followed. */
  #answer(zone: Zone, owner: string, name: string, type: string, asker: Asker, chain: string[] | null): AuthorityAnswer {
    const table = this.#tables.current;
    const soa = this.#soa(zone, table);
    const fixed = { scope: 0, region: null, cacheable: true, origin: null };
    const empty = (rcode: number): AuthorityAnswer => ({ ...fixed, rcode, answers: [], authorities: [soa] });
    if (table === null) return { ...fixed, rcode: RCODE_SERVFAIL, answers: [], authorities: [], cacheable: false };
    const route = table.matcher.routeForHost(name);
    if (name === zone.name) {
      if (type === 'SOA' || type === 'ANY') return { ...fixed, rcode: RCODE_NOERROR, answers: [{ ...soa, name: owner }], authorities: [] };
      if (type === 'NS') {
        const answers: Answer[] = zone.nameservers.map((ns) => ({ name: owner, type: 'NS', ttl: NS_TTL_S, data: ns }));
        return { ...fixed, rcode: RCODE_NOERROR, answers, authorities: [], additionals: this.#glue(zone) };
      }
    }
    // A name server's addresses are static and say where the zone is served from: they win over a route with the same host.
    const host = this.#zones.addressesOf(name);
    if (host !== null) {
      const answers = hostRecords(host, owner, type);
      return answers.length === 0 ? empty(RCODE_NOERROR) : { ...fixed, rcode: RCODE_NOERROR, answers, authorities: [] };
    }
    if (route === null) {
      const exists = name === zone.name || table.matcher.hasHostsBelow(name) || this.#zones.hasNameserverBelow(name);
      return empty(exists ? RCODE_NOERROR : RCODE_NXDOMAIN);
    }
    const service = route.service;
    if (type === 'A' || type === 'AAAA' || type === 'ANY' || type === 'CNAME') {
      const v4 = type !== 'AAAA';
      const apex = name === zone.name;
      const accepts = edgeFor(v4, apex);
      const versions = service.split.versions;
      // Every version of a service is steered the same way (the service's `steering`).
      const steering = (versions[0] as Version).steering;
      const decided = this.#decide(asker);
      const origin = decided.origin;
      let choice: RegionChoice | null = chooseAnswerRegion(versions, origin, service.failWhenAllDown, accepts);
      let family = v4;
      if (choice === null && type === 'ANY') {
        choice = chooseAnswerRegion(versions, origin, service.failWhenAllDown, edgeFor(false, apex));
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
      // Addresses of the family win; the cname answers only for a family the region has none of.
      const cname = apex || addresses.length > 0 ? null : region.edge.cname;
      if (cname === null) {
        if (type === 'CNAME') return { ...empty(RCODE_NOERROR), ...steered };
        const answers: Answer[] = addresses.map((data) => ({ name: owner, type: family ? 'A' : 'AAAA', ttl, data }));
        return { ...steered, rcode: RCODE_NOERROR, answers, authorities: [], region: region.name };
      }
      const alias: AuthorityAnswer = { ...steered, rcode: RCODE_NOERROR, answers: [{ name: owner, type: 'CNAME', ttl, data: cname }], authorities: [], region: region.name };
      return type === 'CNAME' ? alias : this.#follow(alias, cname, family ? 'A' : 'AAAA', asker, chain ?? [name]);
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

  /**
   * An alias with the answer for its target appended when Meridian serves the
   * target's zone, as a resolver would get it by asking for the target (RFC 1034
   * 4.3.2): the rcode and authority are the last name's (RFC 6604). A name met a
   * second time (a loop) or a chain of MAX_CHAIN names ends the answer at the last
   * alias; the resolver follows it or detects the loop itself.
   */
  #follow(alias: AuthorityAnswer, target: string, type: string, asker: Asker, chain: string[]): AuthorityAnswer {
    const zone = this.#zones.find(target);
    if (zone === null || chain.includes(target) || chain.length >= MAX_CHAIN) return alias;
    chain.push(target);
    const next = this.#answer(zone, target, target, type, asker, chain);
    return {
      rcode: next.rcode,
      answers: [...alias.answers, ...next.answers],
      authorities: next.authorities,
      // Both choices hold only where both scopes do: inside the longer prefix.
      scope: Math.max(alias.scope, next.scope),
      region: alias.region,
      cacheable: alias.cacheable && next.cacheable,
      origin: alias.origin ?? next.origin,
    };
  }

  /** A and AAAA of every name server of the zone whose addresses Meridian has, in NS order. */
  #glue(zone: Zone): Answer[] {
    const out: Answer[] = [];
    for (const ns of zone.nameservers) {
      const host = this.#zones.addressesOf(ns);
      if (host !== null) out.push(...hostRecords(host, ns, 'A'), ...hostRecords(host, ns, 'AAAA'));
    }
    return out;
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
