import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { z } from 'zod';
import { formatHostPort, isLoopbackHost } from '../net/address.js';
import { LOG_FORMATS, LOG_LEVELS } from '../observability/logger.js';
import { cidr, durationMs, ipLiteral, listenAddress, location, objectName, positiveDurationMs, upstreamAddress } from './primitives.js';

/** Whether node:net and node:dgram can bind with SO_REUSEPORT here. */
export function reusePortSupported(): boolean {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return process.platform === 'linux' && (major > 22 || (major === 22 && minor >= 12));
}

const zoneName = z
  .string()
  .regex(/^([a-z0-9_]([a-z0-9_-]{0,62})\.)*[a-z0-9_]([a-z0-9_-]{0,62})\.?$/i, 'expected a DNS name such as example.com')
  .transform((name) => name.toLowerCase().replace(/\.$/, ''));

const nodeSchema = z.strictObject({
  name: objectName.default(() => hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 63) || 'meridian'),
  region: objectName.optional(),
  location: location.optional(),
});

/** Strict-Transport-Security sent on every response of the TLS listener. */
const hstsSchema = z
  .strictObject({
    maxAge: durationMs.default(365 * 24 * 3_600_000),
    includeSubDomains: z.boolean().default(false),
    preload: z.boolean().default(false),
  })
  .refine((h) => !h.preload || (h.includeSubDomains && h.maxAge >= 365 * 24 * 3_600_000), {
    message: 'preload needs includeSubDomains and a maxAge of at least 8760h (one year), as browsers\' preload lists require',
    path: ['preload'],
  });

/** A host name a certificate can be ordered for by HTTP-01 or TLS-ALPN-01 (no wildcard: those need DNS-01). */
const acmeName = z
  .string()
  .regex(/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$/i, 'expected a host name such as www.example.com (wildcards cannot be proven by http-01 or tls-alpn-01)')
  .transform((name) => name.toLowerCase().replace(/\.$/, ''));

/** Certificates ordered and renewed by ACME (RFC 8555), beside or instead of certificate files. */
const acmeSchema = z.strictObject({
  /** The ACME server's directory URL (for example Let's Encrypt's). */
  directory: z.url({ protocol: /^https?$/, error: 'expected the https:// URL of an ACME directory' }),
  /** Contact address registered with the account. */
  email: z.email(),
  /** Names to order one certificate each for; absent: the exact host names of the routes (wildcard hosts are skipped). */
  names: z.array(acmeName).min(1).optional(),
  challenge: z.enum(['http-01', 'tls-alpn-01']).default('http-01'),
  /** Directory of the account key and certificates without etcd; default `.meridian/<node.name>/acme`. */
  storage: z.string().min(1).optional(),
  /** How long before expiry a certificate is renewed (a third of its lifetime when that is shorter). */
  renewBefore: positiveDurationMs.default(30 * 24 * 3_600_000),
  /** Extra CA (PEM) trusted for the directory's HTTPS, for private ACME servers. */
  caFile: z.string().min(1).optional(),
  /** File holding the 32-byte key (64 hex digits or base64) that encrypts private keys stored in etcd; required with store.etcd. */
  encryptionKey: z.string().min(1).optional(),
  /** How often every certificate is looked at (besides a timer for the next renewal). */
  checkInterval: positiveDurationMs.default(3_600_000),
  /** Wait after a failed order, doubled on each further failure up to checkInterval. */
  retryAfter: positiveDurationMs.default(60_000),
});

/** The TLS listener: HTTPS beside the plaintext listener, on the same request path. */
const tlsSchema = z
  .strictObject({
    listen: listenAddress.default({ host: '0.0.0.0', port: 8443 }),
    /** PEM files: a certificate (with its chain) and its private key; the first is served to clients that send no matching name. */
    certificates: z.array(z.strictObject({ cert: z.string().min(1), key: z.string().min(1) })).default([]),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    /** How often the session ticket keys are renewed (a ticket from before a renewal no longer resumes). */
    ticketKeyRotation: durationMs.refine((ms) => ms >= 1000, 'must be at least 1s').default(3_600_000),
    hsts: hstsSchema.optional(),
    acme: acmeSchema.optional(),
  })
  .refine((tls) => tls.certificates.length > 0 || tls.acme !== undefined, { message: 'give at least one certificate (or acme)', path: ['certificates'] });

const proxySchema = z.strictObject({
  listen: listenAddress.default({ host: '0.0.0.0', port: 8080 }),
  trustedProxies: z.array(cidr).default([]),
  debugHeaders: z.boolean().default(false),
  /** Slow-client guard: the whole request head must arrive within this time. */
  headersTimeout: positiveDurationMs.default(10_000),
  /** Slow-client guard: the whole request (head and body) must arrive within this time; 0 disables. */
  requestTimeout: durationMs.default(300_000),
  /** How long an idle client keep-alive connection stays open. */
  keepAliveTimeout: positiveDurationMs.default(5_000),
  /** On SIGTERM/SIGINT, once the listener has closed, how long in-flight requests may take before connections are closed. */
  shutdownTimeout: durationMs.default(30_000),
  /** On SIGTERM/SIGINT, how long the listener keeps accepting (readyz 503) so load balancers can stop sending first. */
  shutdownDelay: durationMs.default(0),
  /** Request header fields accepted per request; more get 431. */
  maxHeaders: z.int().min(1).max(10_000).default(100),
  /** HTTP/2 without TLS on the plaintext listener, for clients that know it speaks it (prior knowledge); HTTP/1.1 is served there as before. */
  h2c: z.boolean().default(false),
  /** HTTPS: a TLS listener with its certificates; absent: plaintext only. */
  tls: tlsSchema.optional(),
  /** Client connections open at once; more are refused on arrival. Absent: no cap. */
  maxConnections: z.int().min(1).max(10_000_000).optional(),
  /**
   * Connections to each upstream address a node keeps at most (divided among its
   * workers); a request finding all busy waits for one, in arrival order, up to
   * its try's deadline. 0: no cap.
   */
  maxUpstreamConnections: z.int().min(0).max(1_000_000).default(1024),
  /** `%2F` and `%5C` in request paths: kept encoded, refused (400), or decoded before matching and forwarding. */
  escapedSlashes: z.enum(['keep', 'reject', 'unescape']).default('keep'),
  /** Data-plane worker processes: `auto` is one per available CPU; 1 serves from a single process. */
  workers: z.union([z.literal('auto'), z.int().min(1).max(256)], { error: 'expected "auto" or a whole number of workers from 1 to 256' }).default(1),
  /**
   * How workers share the listening port: `auto` gives each its own socket with
   * SO_REUSEPORT where the runtime can (Node >= 22.12 on Linux; the kernel spreads
   * connections), else the primary accepts and hands connections round-robin.
   */
  reusePort: z
    .union([z.literal('auto'), z.boolean()])
    .default('auto')
    .refine((v) => v !== true || reusePortSupported(), 'needs Node >= 22.12 on Linux (SO_REUSEPORT for node:net and node:dgram)'),
}).refine((p) => p.requestTimeout === 0 || p.headersTimeout <= p.requestTimeout, {
  message: 'headersTimeout cannot exceed requestTimeout',
  path: ['headersTimeout'],
});

const adminSchema = z
  .strictObject({
    listen: listenAddress.default({ host: '127.0.0.1', port: 9901 }),
    /** Bearer token for state, reload (and metrics when protected); required off loopback. */
    token: z
      .string()
      .refine((t) => t === t.trim(), 'must not start or end with white space (clients cannot send it)')
      .default(''),
    /** Whether /metrics needs the token too. */
    protectMetrics: z.boolean().default(false),
  })
  .superRefine((admin, ctx) => {
    if (admin.token !== '') return;
    if (!isLoopbackHost(admin.listen.host)) {
      const where = formatHostPort(admin.listen);
      ctx.addIssue({ code: 'custom', path: ['token'], message: `required when the admin listener (${where}) is not on loopback: set a token, or listen on 127.0.0.1` });
    } else if (admin.protectMetrics) {
      ctx.addIssue({ code: 'custom', path: ['protectMetrics'], message: 'needs admin.token: without one there is nothing to protect /metrics with' });
    }
  });

/** A zone's name server: a name, or `{ name, ipv4, ipv6 }` when Meridian answers its addresses (and sends them as glue). */
const nameserverSchema = z.union([
  zoneName.transform((name) => ({ name, ipv4: [] as string[], ipv6: [] as string[] })),
  z
    .strictObject({ name: zoneName, ipv4: z.array(ipLiteral(4)).default([]), ipv6: z.array(ipLiteral(6)).default([]) })
    .refine((ns) => ns.ipv4.length + ns.ipv6.length > 0, { message: 'give ipv4 or ipv6 addresses, or write the name alone', path: ['ipv4'] }),
]);

const zoneSchema = z.strictObject({ name: zoneName, nameservers: z.array(nameserverSchema).min(1, 'at least one nameserver') });

/** Whether a lowercase name is a zone's apex or lies below it. */
export function insideZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

/**
 * Name server addresses are answered with authority, so they must lie in a zone
 * Meridian serves (elsewhere they would be data resolvers discard), and one name
 * has one set of addresses however many zones list it.
 */
function checkNameservers(zones: readonly z.output<typeof zoneSchema>[], ctx: z.core.$RefinementCtx): void {
  const first = new Map<string, { ipv4: readonly string[]; ipv6: readonly string[]; at: string }>();
  zones.forEach((zone, zi) => {
    zone.nameservers.forEach((ns, ni) => {
      if (ns.ipv4.length + ns.ipv6.length === 0) return;
      const path = [zi, 'nameservers', ni];
      if (!zones.some((other) => insideZone(ns.name, other.name))) {
        ctx.addIssue({ code: 'custom', path, message: `${ns.name} is outside every zone here, so its addresses cannot be answered with authority: write the name alone (its own zone holds its addresses)` });
        return;
      }
      const seen = first.get(ns.name);
      const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));
      if (seen === undefined) first.set(ns.name, { ipv4: ns.ipv4, ipv6: ns.ipv6, at: `dns.zones[${zi}].nameservers[${ni}]` });
      else if (!same(seen.ipv4, ns.ipv4) || !same(seen.ipv6, ns.ipv6)) {
        ctx.addIssue({ code: 'custom', path, message: `${ns.name} has other addresses at ${seen.at}: give one name server the same addresses everywhere` });
      }
    });
  });
}

const dnsSchema = z.strictObject({
  listen: listenAddress.default({ host: '127.0.0.1', port: 5353 }),
  ttl: positiveDurationMs.default(30_000),
  forwarders: z
    .array(upstreamAddress.refine((hp) => isIP(hp.host) !== 0, 'a forwarder is written as ip:port (a host name would need a resolver to reach the resolver)'))
    .default([]),
  zones: z.array(zoneSchema).min(1, 'at least one zone').superRefine(checkNameservers),
  /** A TCP client with nothing in flight is disconnected after this much silence (RFC 7766 6.2.3). */
  tcpIdleTimeout: positiveDurationMs.default(10_000),
  /** TCP connections open at once; more are closed as they arrive. */
  maxTcpConnections: z.int().min(1).max(100_000).default(1_024),
});

const etcdTlsSchema = z.strictObject({
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
});

const etcdSchema = z.strictObject({
  endpoints: z.array(z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })).min(1).default(['http://127.0.0.1:2379']),
  prefix: z.string().startsWith('/').default('/meridian/'),
  username: z.string().optional(),
  password: z.string().optional(),
  tls: etcdTlsSchema.optional(),
  /** How long boot waits for etcd before serving the last-good snapshot. */
  startupTimeout: positiveDurationMs.default(5_000),
  dialTimeout: positiveDurationMs.default(3_000),
  /** Deadline of each unary call (list, put, transaction). */
  requestTimeout: positiveDurationMs.default(5_000),
  /** gRPC keepalive: a ping after this much silence, and how long its answer may take. */
  keepaliveTime: positiveDurationMs.default(5_000),
  keepaliveTimeout: positiveDurationMs.default(3_000),
});

const storeSchema = z
  .strictObject({
    file: z.string().min(1).optional(),
    etcd: etcdSchema.optional(),
    /** Default: `.meridian/<node.name>/last-good.json`, so nodes sharing a directory never overwrite each other's. */
    snapshot: z.string().min(1).optional(),
  })
  .refine((s) => !(s.file !== undefined && s.etcd !== undefined), 'set either store.file or store.etcd, not both');

const networkSchema = z
  .strictObject({ cidr, region: objectName.optional(), location: location.optional() })
  .refine((n) => (n.region === undefined) !== (n.location === undefined), 'give exactly one of region or location');

const geoSchema = z.strictObject({
  mmdb: z.string().min(1).optional(),
  networks: z.array(networkSchema).default([]),
});

/** Logs: the process log's level and format, and the access log. */
const logSchema = z.strictObject({
  /** A line per request: `off`, `stdout`, or the path of a file to append to (opened again on SIGUSR1 and when moved). */
  access: z
    .string()
    .min(1, 'expected off, stdout or the path of a file')
    .refine((v) => v.trim() === v, 'must not start or end with white space')
    .optional(),
  /** Fraction (0, 1] of 1xx-3xx access lines written; 4xx and 5xx lines are always written. */
  successSample: z.number().gt(0, 'must be above 0 (errors are always written; to write nothing set log.access: off)').max(1).default(1),
  /** The process log's level (`--log-level` and MERIDIAN_LOG_LEVEL win). */
  level: z.enum(LOG_LEVELS).optional(),
  /** The process log's format: `pretty` (coloured) when stdout is a terminal and JSON otherwise, or either always (MERIDIAN_LOG_FORMAT wins). */
  format: z.enum(LOG_FORMATS).default('auto'),
});

/** The static configuration file (`meridian start --config FILE`). */
export const staticConfigSchema = z
  .strictObject({
    node: nodeSchema.prefault({}),
    proxy: proxySchema.prefault({}),
    admin: adminSchema.prefault({}),
    dns: dnsSchema.optional(),
    store: storeSchema.prefault({}),
    geo: geoSchema.prefault({}),
    log: logSchema.prefault({}),
  })
  .refine((config) => config.store.etcd === undefined || config.proxy.tls?.acme === undefined || config.proxy.tls.acme.encryptionKey !== undefined, {
    message: 'required with store.etcd: the fleet keeps private keys in etcd, encrypted with this key',
    path: ['proxy', 'tls', 'acme', 'encryptionKey'],
  })
  .transform((config) => ({
    ...config,
    store: { ...config.store, snapshot: config.store.snapshot ?? `.meridian/${config.node.name}/last-good.json` },
    log: { ...config.log, access: config.log.access ?? 'off' },
  }));

/** Static configuration after validation and defaults; durations in milliseconds. */
export type StaticConfig = z.output<typeof staticConfigSchema>;
/** The `proxy.tls` section after validation. */
export type TlsConfig = z.output<typeof tlsSchema>;
/** The `proxy.tls.acme` section after validation. */
export type AcmeConfig = z.output<typeof acmeSchema>;
/** One `dns.zones` entry after validation: every name server as `{ name, ipv4, ipv6 }`. */
export type ZoneConfig = z.output<typeof zoneSchema>;
/** One `geo.networks` entry after validation. */
export type NetworkEntry = z.output<typeof networkSchema>;
