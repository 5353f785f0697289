import { endpointKey } from '../net/upstream-tls.js';
import type { ConfigIssue } from './issues.js';
import { runAtOnce } from './slicing.js';
import { objectPath } from './routing-validate.js';
import type { RouteSpec, RoutingDocument, ServiceSpec } from './routing-schema.js';
import { endpointTls } from './upstream-tls.js';

/** A cross-reference problem, with what it involves so a store can tell which change caused it. */
export interface ReferenceIssue extends ConfigIssue {
  /** `kind.name` of the object the problem is reported on. */
  readonly object: string;
  /** `kind.name` of an object it names that is not in the document. */
  readonly missing?: string;
  /** `kind.name` of an object it names that is in the document but unusable by its own problems. */
  readonly dependsOn?: string;
  /** `kind.name` of the route that already claims the same host and path. */
  readonly conflictsWith?: string;
}

/** The outcome of the cross-reference checks of a document. */
export interface ReferenceCheck {
  readonly issues: ReferenceIssue[];
  /** Services without problems: the ones a table can hold. */
  readonly services: ReadonlySet<string>;
  /** Routes without problems whose service is usable. */
  readonly routes: ReadonlySet<string>;
}

/** Why a reference to another object does not resolve: it never existed, or it was rejected. */
function missingText(kind: 'region' | 'service', name: string, rejected: ReadonlySet<string>): string {
  return rejected.has(`${kind}s.${name}`) ? `${kind} "${name}" is disabled by its own errors` : `unknown ${kind} "${name}"`;
}

function serviceIssues(name: string, spec: ServiceSpec, regions: Readonly<Record<string, unknown>>, rejected: ReadonlySet<string>): ReferenceIssue[] {
  const issues: ReferenceIssue[] = [];
  const object = `services.${name}`;
  const at = (...segments: PropertyKey[]): string => objectPath('services', name, ...segments);
  const problem = (path: string, message: string, missing?: string): void => {
    issues.push({ path, message, reason: 'reference', object, ...(missing === undefined ? {} : { missing }) });
  };
  const region = (path: string, ref: string): void => {
    if (!Object.hasOwn(regions, ref)) problem(path, missingText('region', ref, rejected), `regions.${ref}`);
  };
  spec.failover?.forEach((ref, i) => region(at('failover', i), ref));
  for (const ref of Object.keys(spec.regionWeights ?? {})) region(at('regionWeights', ref), ref);
  if (spec.steering === 'failover' && (spec.failover ?? []).length === 0) problem(at('failover'), 'steering: failover needs a failover list of regions');
  if (spec.steering === 'weighted' && Object.values(spec.regionWeights ?? {}).every((w) => w === 0)) {
    problem(at('regionWeights'), 'steering: weighted needs regionWeights with a weight above 0');
  }
  const versionNames = Object.keys(spec.versions);
  if (spec.split === undefined) {
    if (versionNames.length > 1) problem(at('split'), 'split.weights is required when a service has more than one version');
  } else {
    for (const version of Object.keys(spec.split.weights)) {
      if (!Object.hasOwn(spec.versions, version)) problem(at('split', 'weights', version), `unknown version "${version}"`);
    }
    if (Object.values(spec.split.weights).every((w) => w === 0)) problem(at('split', 'weights'), 'at least one weight must be above 0');
  }
  for (const [version, versionSpec] of Object.entries(spec.versions)) {
    let count = 0;
    for (const [ref, endpoints] of Object.entries(versionSpec.endpoints)) {
      const where = at('versions', version, 'endpoints', ref);
      region(where, ref);
      const seen = new Set<string>();
      endpoints.forEach((ep, i) => {
        // http:// and https:// on one address are two endpoints; so is a bare one in a version with a tls block.
        const key = endpointKey({ ...ep.address, tls: endpointTls(ep, versionSpec) });
        if (seen.has(key)) problem(`${where}[${i}]`, `duplicate endpoint ${key}`);
        seen.add(key);
      });
      count += endpoints.length;
    }
    const weight = spec.split === undefined ? 1 : (spec.split.weights[version] ?? 0);
    if (count === 0 && weight > 0) problem(at('versions', version), 'has weight above 0 but no endpoints');
  }
  return issues;
}

/** The host and path keys a route claims. */
export function routeKeys(spec: RouteSpec): string[] {
  return (spec.hosts.length === 0 ? ['*'] : spec.hosts).map((host) => `${host} ${spec.pathPrefix}`);
}

/**
 * Checks the references between objects that each validated on their own:
 * regions a service names, the versions its split names, the service a route
 * names, and routes claiming the same host and path (the first by name keeps
 * it). `rejected` holds the `kind.name` of objects left out by their own
 * errors, so references to them say so.
 */
export function checkReferences(doc: RoutingDocument, rejected: ReadonlySet<string> = new Set()): ReferenceCheck {
  return runAtOnce(referenceSteps(doc, rejected));
}

/** checkReferences as steps, one per object, for callers that spread it over the event loop (runSliced). */
export function* referenceSteps(doc: RoutingDocument, rejected: ReadonlySet<string> = new Set()): Generator<void, ReferenceCheck> {
  const issues: ReferenceIssue[] = [];
  const services = new Set<string>();
  for (const [name, spec] of Object.entries(doc.services)) {
    const problems = serviceIssues(name, spec, doc.regions, rejected);
    if (problems.length > 0) issues.push(...problems);
    else services.add(name);
    yield;
  }
  const routes = new Set<string>();
  const claimed = new Map<string, string>();
  for (const name of Object.keys(doc.routes).sort()) {
    const spec = doc.routes[name] as RouteSpec;
    const object = `routes.${name}`;
    if (!services.has(spec.service)) {
      const path = objectPath('routes', name, 'service');
      const target = `services.${spec.service}`;
      if (Object.hasOwn(doc.services, spec.service)) {
        issues.push({ path, message: `service "${spec.service}" is disabled by its own errors`, reason: 'reference', object, dependsOn: target });
      } else {
        issues.push({ path, message: missingText('service', spec.service, rejected), reason: 'reference', object, missing: target });
      }
      continue;
    }
    const keys = routeKeys(spec);
    const clash = keys.find((key) => claimed.has(key));
    if (clash !== undefined) {
      const owner = claimed.get(clash) as string;
      issues.push({ path: objectPath('routes', name), message: `host and path prefix "${clash}" already belong to route "${owner}"`, reason: 'reference', object, conflictsWith: `routes.${owner}` });
      continue;
    }
    for (const key of keys) claimed.set(key, name);
    routes.add(name);
    yield;
  }
  return { issues, services, routes };
}
