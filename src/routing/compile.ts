import { endpointKey, type UpstreamTarget } from '../net/upstream-tls.js';
import type { ConfigIssue } from '../config/issues.js';
import { referenceSteps } from '../config/routing-references.js';
import { runAtOnce, runSliced } from '../config/slicing.js';
import type { RegionSpec, RouteSpec, RoutingDocument, ServiceSpec } from '../config/routing-schema.js';
import { endpointProtocol } from '../config/upstream-protocol.js';
import { endpointTls } from '../config/upstream-tls.js';
import type { Origin } from '../geo/origin.js';
import type { EndpointHealth } from '../health/endpoint-health.js';
import type { HealthCheckSpec } from '../health/registry.js';
import { RouteMatcher } from './matcher.js';
import { VersionSplit } from './split.js';
import { buildSteering, type SteeringContext } from './steering.js';
import type { Endpoint, Region, RegionGroup, Route, RoutingTable, Service, TableSource, UpstreamLink, Version } from './table.js';

/** Runtime state the compiled table attaches to its endpoints; shared across tables. */
export interface TableBindings {
  /** The pool and load of a target (address plus TLS settings). */
  upstream(target: UpstreamTarget, connectTimeoutMs: number): UpstreamLink;
  /** The health record of a target judged by these check settings. */
  health(target: UpstreamTarget, check: HealthCheckSpec, slowStartMs: number): EndpointHealth;
}

/**
 * The runtime state tables attach to: pools and health records, shared by
 * every table that uses them, and released when no table in force does.
 */
export interface TableRuntime extends TableBindings {
  /** Keeps exactly what these endpoints use; releases the rest. */
  retain(endpoints: readonly Endpoint[]): void;
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
  /** Processes serving traffic for the node (its workers): per-node limits are divided among them. Default 1. */
  readonly processes?: number;
}

/** A per-node limit as one of `processes` processes applies it: its share, rounded up (never below 1 when it was; 0 stays 0). */
export function share(limit: number, processes: number): number {
  return limit === 0 ? 0 : Math.max(1, Math.ceil(limit / processes));
}

function compileRegions(specs: Readonly<Record<string, RegionSpec>>): Map<string, Region> {
  const regions = new Map<string, Region>();
  let index = 0;
  for (const [name, spec] of Object.entries(specs)) {
    const edge = Object.freeze({ ipv4: spec.edge.ipv4, ipv6: spec.edge.ipv6, cname: spec.edge.cname ?? null });
    regions.set(name, Object.freeze({ name, index: index++, spec, location: spec.location, countries: spec.countries, drain: spec.drain, edge }));
  }
  return regions;
}

/** Whether `doc` has exactly the region objects (same specs, same order) of a compiled table. */
function sameRegions(previous: RoutingTable, doc: RoutingDocument): boolean {
  const names = Object.keys(doc.regions);
  if (names.length !== previous.regions.size) return false;
  let i = 0;
  for (const region of previous.regions.values()) {
    if (names[i++] !== region.name || doc.regions[region.name] !== region.spec) return false;
  }
  return true;
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
      const endpoints = specs.map((ep): Endpoint => {
        const tls = endpointTls(ep, versionSpec);
        const protocol = endpointProtocol(ep, versionSpec);
        const target: UpstreamTarget =
          tls === null && protocol === 'http1'
            ? ep.address
            : Object.freeze({ host: ep.address.host, port: ep.address.port, ...(tls === null ? {} : { tls }), ...(protocol === 'http1' ? {} : { protocol }) });
        return Object.freeze({
          key: endpointKey(target),
          address: target,
          tls,
          weight: ep.weight,
          drain: ep.drain || region.drain,
          region,
          service: name,
          version: versionName,
          seriesKey: `${versionName}\u0000${region.name}`,
          upstream: ctx.bindings.upstream(target, spec.timeouts.connect),
          health: ctx.bindings.health(target, spec.healthCheck, spec.slowStart),
          maxConcurrent: spec.limits.maxConcurrentPerEndpoint === undefined ? Number.POSITIVE_INFINITY : share(spec.limits.maxConcurrentPerEndpoint, ctx.processes ?? 1),
          outlier: spec.outlier,
          peers,
        });
      });
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
    retryBudget: { percent: spec.retries.budget.percent, minConcurrent: share(spec.retries.budget.minConcurrent, ctx.processes ?? 1) },
    perTryTimeoutMs: spec.retries.perTryTimeout ?? spec.timeouts.request,
    failWhenAllDown: spec.whenAllDown === 'fail',
  });
}

/** A compiled table and the problems of the objects left out of it. */
export interface CompiledTable {
  readonly table: RoutingTable;
  readonly issues: ConfigIssue[];
}

/**
 * The compile as steps: one per service and per route, so a caller can spread
 * a large table over several turns of the event loop. Objects whose spec is the
 * very object the previous table was built from (same identity, same regions)
 * are reused as they are, with their pools, health and metric series.
 */
function* compileSteps(doc: RoutingDocument, ctx: CompileContext, previous: RoutingTable | null): Generator<void, CompiledTable> {
  const references = yield* referenceSteps(doc, ctx.rejected);
  const reuse = previous !== null && sameRegions(previous, doc) ? previous : null;
  const regions = reuse?.regions ?? compileRegions(doc.regions);
  const steeringCtx: SteeringContext = { node: ctx.node, regions };
  const services = new Map<string, Service>();
  for (const name of references.services) {
    const spec = doc.services[name] as ServiceSpec;
    const old = reuse?.services.get(name);
    services.set(name, old !== undefined && old.spec === spec ? old : compileService(name, spec, regions, ctx, steeringCtx));
    yield;
  }
  const routes = new Map<string, Route>();
  for (const name of Object.keys(doc.routes).sort()) {
    if (!references.routes.has(name)) continue;
    const spec = doc.routes[name] as RouteSpec;
    const service = services.get(spec.service) as Service;
    const old = reuse?.routes.get(name);
    routes.set(name, old !== undefined && old.spec === spec && old.service === service ? old : Object.freeze({ name, spec, service, series: new Map() }));
    yield;
  }
  const table: RoutingTable = Object.freeze({
    revision: ctx.revision,
    source: ctx.source,
    regions,
    services,
    routes,
    matcher: new RouteMatcher(routes.values()),
    issues: Object.freeze([...references.issues]),
  });
  return { table, issues: references.issues };
}

/**
 * Compiles validated objects into an immutable RoutingTable. Cross references
 * are checked here: an object with a problem is left out (with an issue), and so
 * is whatever depends on it; the rest of the table still compiles.
 */
export function compileTable(doc: RoutingDocument, ctx: CompileContext, previous: RoutingTable | null = null): CompiledTable {
  return runAtOnce(compileSteps(doc, ctx, previous));
}

/**
 * compileTable spread over the event loop, so requests keep flowing while a
 * table of thousands of services is built beside the one in force.
 */
export function compileTableSliced(doc: RoutingDocument, ctx: CompileContext, previous: RoutingTable | null): Promise<CompiledTable> {
  return runSliced(compileSteps(doc, ctx, previous));
}

/** Every endpoint of a table, for retaining pools and health records across swaps. */
export function tableEndpoints(table: RoutingTable): Endpoint[] {
  const out: Endpoint[] = [];
  for (const service of table.services.values()) {
    for (const version of service.versions.values()) for (const group of version.groups) out.push(...group.all);
  }
  return out;
}

/** Keys (`https://host:port`) of a table's endpoints that accept any certificate (`tls.verify: false`), each once. */
export function unverifiedEndpoints(table: RoutingTable): string[] {
  const keys = new Set<string>();
  for (const ep of tableEndpoints(table)) if (ep.tls !== null && !ep.tls.verify) keys.add(ep.key);
  return [...keys];
}
