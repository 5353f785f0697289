/**
 * What every DNS candidate serves in bench/dns: zone example.com, two regions
 * with their edge addresses and client subnets, and the query mix the load
 * tools send. Meridian's config and gdnsd's zone file are both written from here.
 */

/** The zone every candidate is authoritative for. */
export const ZONE = 'example.com';

/** The zone's one nameserver. */
export const NAMESERVER = `ns1.${ZONE}`;

/** Answer TTL in seconds, the same for every candidate. */
export const TTL_SECONDS = 30;

/** A client subnet as carried in the EDNS Client Subnet option. */
export interface Subnet {
  readonly ip: string;
  readonly prefixLength: number;
}

/** One region: where it sits, what GeoDNS answers for it, and the client network mapped to it. */
export interface BenchRegion {
  readonly name: string;
  readonly location: { readonly lat: number; readonly lon: number };
  readonly ipv4: string;
  readonly ipv6: string;
  /** `geo.networks` entry of Meridian's config. */
  readonly network: string;
  /** A /24 inside `network`, sent as ECS. */
  readonly clientSubnet: Subnet;
}

/** The two regions, eu-west first. */
export const REGIONS: readonly BenchRegion[] = [
  {
    name: 'eu-west',
    location: { lat: 53.35, lon: -6.26 },
    ipv4: '203.0.113.10',
    ipv6: '2001:db8:1::10',
    network: '10.1.0.0/16',
    clientSubnet: { ip: '10.1.2.0', prefixLength: 24 },
  },
  {
    name: 'us-east',
    location: { lat: 38.9, lon: -77.04 },
    ipv4: '198.51.100.10',
    ipv6: '2001:db8:2::10',
    network: '10.2.0.0/16',
    clientSubnet: { ip: '10.2.3.0', prefixLength: 24 },
  },
];

/** The region whose subnet the ECS load sends: not the first, so a fallback to the first region would show. */
export const ECS_REGION = REGIONS[1] as BenchRegion;

/** The route's hosts, answered by Meridian from the steering of service `api`. */
export const ROUTE_HOSTS = [`api.${ZONE}`, `www.${ZONE}`] as const;

/** A name in the zone that nothing serves: NXDOMAIN. */
export const MISSING_NAME = `nope.${ZONE}`;

/**
 * The query mix, one dnsperf line each (`name type`), in the order sent:
 * 70% `api A`, 20% `www AAAA`, 10% `nope A` (NXDOMAIN), spread out so that
 * any short window has the same mix.
 */
export const QUERY_LINES: readonly string[] = [
  `api.${ZONE} A`,
  `www.${ZONE} AAAA`,
  `api.${ZONE} A`,
  `api.${ZONE} A`,
  `${MISSING_NAME} A`,
  `api.${ZONE} A`,
  `api.${ZONE} A`,
  `www.${ZONE} AAAA`,
  `api.${ZONE} A`,
  `api.${ZONE} A`,
];

/** `ip/prefix` for logs and the loadgen `--ecs` flag. */
export function formatSubnet(subnet: Subnet): string {
  return `${subnet.ip}/${subnet.prefixLength}`;
}

/**
 * The ECS option (RFC 7871, code 8) for an IPv4 subnet as dnsperf's
 * `-E code:hex` wants it: family 1, source prefix, scope 0, then only the
 * address bytes the prefix covers.
 */
export function ecsOptionHex(subnet: Subnet): string {
  const bytes = subnet.ip.split('.').map(Number).slice(0, Math.ceil(subnet.prefixLength / 8));
  const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');
  return `8:${hex(1, 4)}${hex(subnet.prefixLength, 2)}${hex(0, 2)}${bytes.map((b) => hex(b, 2)).join('')}`;
}

/** Parses `a.b.c.d/len`; null when it is not an IPv4 subnet. */
export function parseSubnet(text: string): Subnet | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (m === null) return null;
  const octets = m.slice(1, 5).map(Number);
  const prefixLength = Number(m[5]);
  if (octets.some((o) => o > 255) || prefixLength > 32) return null;
  return { ip: octets.join('.'), prefixLength };
}
