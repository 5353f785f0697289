import type { HostPort } from './address.js';
import { formatHostPort } from './address.js';
import type { ConfigIssue } from './issues.js';
import { objectPath } from './routing-validate.js';
import type { RegionSpec, RouteSpec, RoutingDocument, ServiceSpec } from './routing-schema.js';
import type { Origin } from '../geo/origin.js';
import type { EndpointHealth } from '../health/endpoint-health.js';
import type { HealthCheckSpec } from '../health/registry.js';
import type { Upstream } from '../proxy/upstream.js';
import { RouteMatcher } from '../routing/matcher.js';
import { VersionSplit } from '../routing/split.js';
import { buildSteering, type SteeringContext } from '../routing/steering.js';
import type { Endpoint, Region, RegionGroup, Route, RoutingTable, Service, TableSource, Version } from '../routing/table.js';

/** Runtime state the compiled table attaches to its endpoints; shared across tables. */
export interface TableBindings {
  upstream(address: HostPort, connectTimeoutMs: number): Upstream;
  health(address: HostPort, check: HealthCheckSpec, slowStartMs: number): EndpointHealth;
}

/** Everything a compile needs besides the document. */
export interface CompileContext {
  readonly revision: number;
  readonly source: TableSource;
  readonly bindings: TableBindings;
  /** The proxy's own origin (node.location / node.region), steering's fallback. */
  readonly node: Origin;
  /** `kind.name` of objects rejected by validation, so references to them say so. */
  readonly rejected?: ReadonlySet<string>;
}

function compileRegions(specs: Readonly<Record<string, RegionSpec>>): Map<string, Region> {
  const regions = new Map<string, Region>();
  let index = 0;
  for (const [name, spec] of Object.entries(specs)) {
    regions.set(name, Object.freeze({ name, index: index++, location: spec.location, countries: spec.countries, drain: spec.drain, edge: spec.edge }));
  }
  return regions;
}

/** Cross-reference checks of one service against the regions; returns its issues. */
/** Why a reference to another object does not resolve: it never existed, or it was rejected. */
function missing(kind: 'region' | 'service', name: string, rejected: ReadonlySet<string>): string {
  return rejected.has(`${kind}s.${name}`) ? `${kind} "${name}" is disabled by its own errors` : `unknown ${kind} "${name}"`;
}

function serviceIssues(name: string, spec: ServiceSpec, regions: ReadonlyMap<string, Region>, rejected: ReadonlySet<string>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = (...segments: PropertyKey[]): string => objectPath('services', name, ...segments);
  const unknownRegion = (region: string): string => missing('region', region, rejected);
  spec.failover?.forEach((region, i) => {
    if (!regions.has(region)) issues.push({ path: at('failover', i), message: unknownRegion(region) });
  });
  for (const region of Object.keys(spec.regionWeights ?? {})) {
    if (!regions.has(region)) issues.push({ path: at('regionWeights', region), message: unknownRegion(region) });
  }
  if (spec.steering === 'failover' && (spec.failover ?? []).length === 0) {
    issues.push({ path: at('failover'), message: 'steering: failover needs a failover list of regions' });
  }
  if (spec.steering === 'weighted' && Object.values(spec.regionWeights ?? {}).every((w) => w === 0)) {
    issues.push({ path: at('regionWeights'), message: 'steering: weighted needs regionWeights with a weight above 0' });
  }
  const versionNames = Object.keys(spec.versions);
  if (spec.split === undefined) {
    if (versionNames.length > 1) issues.push({ path: at('split'), message: 'split.weights is required when a service has more than one version' });
  } else {
    for (const version of Object.keys(spec.split.weights)) {
      if (!(version in spec.versions)) issues.push({ path: at('split', 'weights', version), message: `unknown version "${version}"` });
    }
    if (Object.values(spec.split.weights).every((w) => w === 0)) issues.push({ path: at('split', 'weights'), message: 'at least one weight must be above 0' });
  }
  for (const [version, versionSpec] of Object.entries(spec.versions)) {
    let count = 0;
    for (const [region, endpoints] of Object.entries(versionSpec.endpoints)) {
      const where = at('versions', version, 'endpoints', region);
      if (!regions.has(region)) issues.push({ path: where, message: unknownRegion(region) });
      const seen = new Set<string>();
      endpoints.forEach((ep, i) => {
        const key = formatHostPort(ep.address);
        if (seen.has(key)) issues.push({ path: `${where}[${i}]`, message: `duplicate endpoint ${key}` });
        seen.add(key);
      });
      count += endpoints.length;
    }
    const weight = spec.split === undefined ? 1 : (spec.split.weights[version] ?? 0);
    if (count === 0 && weight > 0) issues.push({ path: at('versions', version), message: 'has weight above 0 but no endpoints' });
  }
  return issues;
}

function buildGroup(region: Region, endpoints: readonly Endpoint[]): RegionGroup {
  const usable = endpoints.filter((ep) => !ep.drain);
  const cumulativeWeights = new Float64Array(usable.length);
  let sum = 0;
  usable.forEach((ep, i) => (cumulativeWeights[i] = sum += ep.weight));
  return Object.freeze({ region, endpoints: Object.freeze(usable), all: Object.freeze([...endpoints]), cumulativeWeights });
}

function compileService(name: string, spec: ServiceSpec, regions: ReadonlyMap<string, Region>, ctx: CompileContext, steeringCtx: SteeringContext): Service {
  const versions = new Map<string, Version & { fallbacks: Version[] }>();
  for (const [versionName, versionSpec] of Object.entries(spec.versions)) {
    const groups: RegionGroup[] = [];
    for (const region of regions.values()) {
      const specs = versionSpec.endpoints[region.name];
      if (specs === undefined || specs.length === 0) continue;
      const peers: Endpoint[] = [];
      const endpoints = specs.map(
        (ep): Endpoint =>
          Object.freeze({
            key: formatHostPort(ep.address),
            address: ep.address,
            weight: ep.weight,
            drain: ep.drain || region.drain,
            region,
            service: name,
            version: versionName,
            seriesKey: `${versionName}\u0000${region.name}`,
            upstream: ctx.bindings.upstream(ep.address, spec.timeouts.connect),
            health: ctx.bindings.health(ep.address, spec.healthCheck, spec.slowStart),
            maxConcurrent: spec.limits.maxConcurrentPerEndpoint ?? Number.POSITIVE_INFINITY,
            outlier: spec.outlier,
            peers,
          }),
      );
      peers.push(...endpoints);
      Object.freeze(peers);
      const group = buildGroup(region, endpoints);
      groups.push(group);
    }
    const weight = spec.split === undefined ? 1 : (spec.split.weights[versionName] ?? 0);
    const steering = buildSteering(spec.steering, groups.filter((g) => g.endpoints.length > 0), steeringCtx, spec);
    versions.set(versionName, { name: versionName, service: name, weight, groups: Object.freeze(groups), steering, fallbacks: [] });
  }
  const heaviestFirst = [...versions.values()].sort((a, b) => b.weight - a.weight || (a.name < b.name ? -1 : 1));
  for (const version of versions.values()) {
    version.fallbacks = heaviestFirst.filter((v) => v !== version);
    Object.freeze(version.fallbacks);
    Object.freeze(version);
  }
  const sticky = spec.split?.sticky ?? null;
  const split = new VersionSplit(name, [...versions.values()], sticky, spec.split?.override?.header ?? null);
  return Object.freeze({
    name,
    spec,
    split,
    versions,
    connectTimeoutMs: spec.timeouts.connect,
    requestTimeoutMs: spec.timeouts.request,
    retryAttempts: spec.retries.attempts,
    perTryTimeoutMs: spec.retries.perTryTimeout ?? spec.timeouts.request,
    failWhenAllDown: spec.whenAllDown === 'fail',
  });
}

function routeKeys(spec: RouteSpec): string[] {
  return (spec.hosts.length === 0 ? ['*'] : spec.hosts).map((host) => `${host} ${spec.pathPrefix}`);
}

/**
 * Compiles validated objects into an immutable RoutingTable. Cross references
 * are checked here: an object with a problem is left out (with an issue), and so
 * is whatever depends on it; the rest of the table still compiles.
 */
export function compileTable(doc: RoutingDocument, ctx: CompileContext): { table: RoutingTable; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const rejected = ctx.rejected ?? new Set<string>();
  const regions = compileRegions(doc.regions);
  const steeringCtx: SteeringContext = { node: ctx.node, regions };
  const services = new Map<string, Service>();
  for (const [name, spec] of Object.entries(doc.services)) {
    const problems = serviceIssues(name, spec, regions, rejected);
    if (problems.length > 0) issues.push(...problems);
    else services.set(name, compileService(name, spec, regions, ctx, steeringCtx));
  }
  const routes = new Map<string, Route>();
  const claimed = new Map<string, string>();
  for (const name of Object.keys(doc.routes).sort()) {
    const spec = doc.routes[name] as RouteSpec;
    const service = services.get(spec.service);
    if (service === undefined) {
      const why = spec.service in doc.services ? `service "${spec.service}" is disabled by its own errors` : missing('service', spec.service, rejected);
      issues.push({ path: objectPath('routes', name, 'service'), message: why });
      continue;
    }
    const clash = routeKeys(spec).map((key) => [key, claimed.get(key)] as const).find(([, owner]) => owner !== undefined);
    if (clash !== undefined) {
      issues.push({ path: objectPath('routes', name), message: `host and path prefix "${clash[0]}" already belong to route "${clash[1] ?? ''}"` });
      continue;
    }
    for (const key of routeKeys(spec)) claimed.set(key, name);
    routes.set(name, Object.freeze({ name, spec, service, series: new Map() }));
  }
  const table: RoutingTable = Object.freeze({
    revision: ctx.revision,
    source: ctx.source,
    regions,
    services,
    routes,
    matcher: new RouteMatcher(routes.values()),
    issues: Object.freeze([...issues]),
  });
  return { table, issues };
}

/** Every endpoint of a table, for retaining pools and health records across swaps. */
export function tableEndpoints(table: RoutingTable): Endpoint[] {
  const out: Endpoint[] = [];
  for (const service of table.services.values()) {
    for (const version of service.versions.values()) for (const group of version.groups) out.push(...group.all);
  }
  return out;
}
