import { z } from 'zod';
import type { HostPort } from '../net/address.js';
import type { UpstreamProtocol } from '../net/upstream-protocol.js';
import type { UpstreamTls } from '../net/upstream-tls.js';
import { durationMs, ipLiteral, location, objectName, positiveDurationMs, weight } from './primitives.js';
import { endpointProtocol, protocolProblem, upstreamProtocolSchema } from './upstream-protocol.js';
import { endpointAddress, endpointTls, upstreamTlsSchema } from './upstream-tls.js';

const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected an HTTP header name')
  .transform((name) => name.toLowerCase());

const cookieName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected a cookie name');

/** A route host: exact (`api.example.com`) or a leading wildcard (`*.example.net`); lowercased. */
const routeHost = z
  .string()
  .regex(
    /^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,62})\.)*[a-z0-9_]([a-z0-9_-]{0,62})\.?$/i,
    'expected a host name such as api.example.com or *.example.net',
  )
  .transform((host) => host.toLowerCase().replace(/\.$/, ''));

/** A host name GeoDNS may alias a region to (RFC 1123 labels, at most 253 characters, a top label that is not all digits); lowercased. */
const aliasHost = z
  .string()
  .regex(/^(?=.{1,253}\.?$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$/i, 'expected a host name such as edge.cdn.example.net')
  .refine((host) => !/(^|\.)\d+\.?$/.test(host), 'expected a host name, not an address: addresses go in ipv4 or ipv6')
  .transform((host) => host.toLowerCase().replace(/\.$/, ''));

/** One region of the routing table. */
export const regionSchema = z.strictObject({
  location,
  countries: z.array(z.string().regex(/^[A-Z]{2}$/, 'expected an ISO 3166-1 alpha-2 code such as IE')).default([]),
  drain: z.boolean().default(false),
  edge: z
    .strictObject({
      ipv4: z.array(ipLiteral(4)).default([]),
      ipv6: z.array(ipLiteral(6)).default([]),
      /** GeoDNS answers a CNAME to this name for an address family the region has no addresses of. */
      cname: aliasHost.optional(),
    })
    .prefault({}),
});

/** A validated endpoint. */
export interface EndpointSpec {
  readonly address: HostPort;
  /** The scheme written before the address, or null for a bare `host:port`. */
  readonly scheme: 'http' | 'https' | null;
  readonly weight: number;
  readonly drain: boolean;
  /** The endpoint's own TLS settings, which replace its version's. */
  readonly tls?: UpstreamTls;
  /** The endpoint's own protocol, which replaces its version's. */
  readonly protocol?: UpstreamProtocol;
}

const endpointObject = z
  .strictObject({
    address: endpointAddress,
    weight: weight.min(1).default(1),
    drain: z.boolean().default(false),
    tls: upstreamTlsSchema.optional(),
    protocol: upstreamProtocolSchema.optional(),
  })
  .transform(({ address, tls, protocol, ...rest }): EndpointSpec => ({
    address: address.address,
    scheme: address.scheme,
    ...rest,
    ...(tls === undefined ? {} : { tls }),
    ...(protocol === undefined ? {} : { protocol }),
  }));

/** An endpoint: `"host:port"` (or `http://` / `https://host:port`) or `{ address, weight, drain, tls, protocol }`. */
const endpointSchema = z.union([
  endpointAddress.transform((written): EndpointSpec => ({ address: written.address, scheme: written.scheme, weight: 1, drain: false })),
  endpointObject,
]);

/** Expected health-check statuses: codes (`204`) or inclusive ranges (`"200-399"`). */
const statusRange = z.union([
  z.int().min(100).max(599).transform((code) => ({ from: code, to: code })),
  z.string().transform((text, ctx) => {
    const m = /^([1-5]\d\d)-([1-5]\d\d)$/.exec(text);
    if (m === null || Number(m[1]) > Number(m[2])) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is not a status range such as "200-399"` });
      return z.NEVER;
    }
    return { from: Number(m[1]), to: Number(m[2]) };
  }),
]);

const healthCheckSchema = z
  .strictObject({
    /** `http`: GET `path`, judged by status; `tcp`: a TCP connect, for non-HTTP upstreams. */
    mode: z.enum(['http', 'tcp']).default('http'),
    path: z.string().startsWith('/', 'must start with "/"').default('/healthz'),
    host: z.string().min(1).optional(),
    expectedStatus: z.array(statusRange).min(1).default([{ from: 200, to: 399 }]),
    interval: positiveDurationMs.default(5_000),
    timeout: positiveDurationMs.default(2_000),
    healthyThreshold: z.int().min(1).max(100).default(2),
    unhealthyThreshold: z.int().min(1).max(100).default(3),
  })
  .refine((c) => c.timeout <= c.interval, { message: 'timeout must not exceed interval', path: ['timeout'] });

/** Passive health: what ejects an endpoint from live traffic, and for how long. */
const outlierSchema = z.strictObject({
  consecutive5xx: z.int().min(1).max(1000).default(5),
  baseEjectionTime: positiveDurationMs.default(30_000),
  maxEjectionTime: positiveDurationMs.default(300_000),
  maxEjectedPercent: z.int().min(0).max(100).default(50),
});

const retriesSchema = z.strictObject({
  attempts: z.int().min(0).max(10).default(2),
  perTryTimeout: positiveDurationMs.optional(),
  budget: z
    .strictObject({
      percent: z.number().min(0).max(100).default(20),
      minConcurrent: z.int().min(0).max(1000).default(3),
    })
    .prefault({}),
});

const limitsSchema = z.strictObject({
  /** Requests one endpoint may have in flight from this node; absent: no limit. */
  maxConcurrentPerEndpoint: z.int().min(1).optional(),
});

const splitSchema = z.strictObject({
  weights: z.record(objectName, weight),
  sticky: z
    .union([z.strictObject({ cookie: cookieName }), z.strictObject({ header: headerName })], {
      error: 'expected { cookie: NAME } or { header: NAME }',
    })
    .optional(),
  override: z.strictObject({ header: headerName }).optional(),
});

const versionSchema = z
  .strictObject({
    endpoints: z.record(objectName, z.array(endpointSchema)),
    /** TLS settings of every endpoint of the version (an endpoint's own block replaces them). */
    tls: upstreamTlsSchema.optional(),
    /** The protocol of every endpoint of the version (an endpoint's own replaces it). */
    protocol: upstreamProtocolSchema.optional(),
  })
  .superRefine((version, ctx) => {
    for (const [region, endpoints] of Object.entries(version.endpoints)) {
      endpoints.forEach((ep, i) => {
        const problem = protocolProblem(endpointProtocol(ep, version), endpointTls(ep, version));
        if (problem !== null) ctx.addIssue({ code: 'custom', message: problem, path: ['endpoints', region, i] });
        if (ep.scheme !== 'http' || (ep.tls === undefined && version.tls === undefined)) return;
        const where = ep.tls === undefined ? 'its version has a tls block' : 'it has a tls block';
        ctx.addIssue({ code: 'custom', message: `an http:// endpoint is plaintext, but ${where}: write https://host:port (or host:port), or remove the tls block`, path: ['endpoints', region, i] });
      });
    }
  });

/** One service of the routing table. */
export const serviceSchema = z.strictObject({
  steering: z.enum(['nearest', 'latency', 'failover', 'weighted']).default('nearest'),
  failover: z.array(objectName).optional(),
  regionWeights: z.record(objectName, weight).optional(),
  healthCheck: healthCheckSchema.prefault({}),
  outlier: outlierSchema.prefault({}),
  retries: retriesSchema.prefault({}),
  limits: limitsSchema.prefault({}),
  slowStart: durationMs.default(10_000),
  timeouts: z
    .strictObject({ connect: positiveDurationMs.default(1_000), request: durationMs.default(60_000) })
    .prefault({}),
  whenAllDown: z.enum(['try-all', 'fail']).default('try-all'),
  split: splitSchema.optional(),
  versions: z.record(objectName, versionSchema).refine((v) => Object.keys(v).length > 0, 'at least one version'),
});

/** One route of the routing table. */
export const routeSchema = z.strictObject({
  hosts: z.array(routeHost).default([]),
  pathPrefix: z.string().startsWith('/', 'must start with "/"').default('/'),
  service: objectName,
  /** Plaintext requests get 308 to the same URL on the TLS listener (when the node has one). */
  redirectToHttps: z.boolean().default(false),
});

/** A whole routing table document (a file, or the etcd keys assembled). */
export const routingDocumentSchema = z.strictObject({
  regions: z.record(objectName, regionSchema).default({}),
  services: z.record(objectName, serviceSchema).default({}),
  routes: z.record(objectName, routeSchema).default({}),
});

/** A validated region. */
export type RegionSpec = z.output<typeof regionSchema>;
/** A validated service. */
export type ServiceSpec = z.output<typeof serviceSchema>;
/** A validated route. */
export type RouteSpec = z.output<typeof routeSchema>;
/** A validated routing document. */
export type RoutingDocument = z.output<typeof routingDocumentSchema>;
/** The kinds of object in a routing table, as named in etcd keys. */
export type ObjectKind = 'regions' | 'services' | 'routes';
