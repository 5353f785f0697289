import { compileTable } from '../../src/routing/compile.js';
import type { ConfigIssue } from '../../src/config/issues.js';
import { validateRoutingObjects } from '../../src/config/routing-validate.js';
import { UNKNOWN_ORIGIN, type Origin } from '../../src/geo/origin.js';
import { HealthRegistry } from '../../src/health/registry.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { servingRuntime } from '../../src/proxy/runtime.js';
import { UpstreamRegistry } from '../../src/proxy/upstream.js';
import type { RegionGroup, RoutingTable, Service, Version } from '../../src/routing/table.js';

/** A routing table compiled in-process, the way the applier does it, with no connection opened. */
export interface CompiledForTest {
  readonly table: RoutingTable;
  readonly issues: ConfigIssue[];
  readonly upstreams: UpstreamRegistry;
}

/** A health registry that runs no checks and logs nothing: every endpoint stays `unchecked`. */
export function testHealthRegistry(): HealthRegistry {
  return new HealthRegistry({ activeChecks: false, logger: createLogger('silent'), metrics: new Metrics({ defaultMetrics: false }) });
}

/** Validates and compiles a routing document with fresh upstream and health registries. */
export function compileRouting(raw: unknown, node: Origin = UNKNOWN_ORIGIN): CompiledForTest {
  const { doc, issues, rejected } = validateRoutingObjects(raw);
  const upstreams = new UpstreamRegistry();
  const health = testHealthRegistry();
  const compiled = compileTable(doc, {
    revision: 1,
    source: 'file',
    node,
    rejected,
    bindings: servingRuntime(upstreams, health),
  });
  return { table: compiled.table, issues: [...issues, ...compiled.issues], upstreams };
}

/** Compiles a document that must be clean; throws with every problem otherwise. */
export function compileClean(raw: unknown, node: Origin = UNKNOWN_ORIGIN): RoutingTable {
  const { table, issues } = compileRouting(raw, node);
  if (issues.length > 0) throw new Error(`unexpected routing issues:\n${issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
  return table;
}

/** A service of a compiled table, or a thrown error naming it. */
export function serviceOf(table: RoutingTable, name: string): Service {
  const service = table.services.get(name);
  if (service === undefined) throw new Error(`no service "${name}" in the table`);
  return service;
}

/** A version of a compiled service, or a thrown error naming it. */
export function versionOf(table: RoutingTable, service: string, version = 'stable'): Version {
  const found = serviceOf(table, service).versions.get(version);
  if (found === undefined) throw new Error(`no version "${version}" in service "${service}"`);
  return found;
}

/** The region group of a version in one region, or a thrown error naming it. */
export function groupOf(version: Version, region: string): RegionGroup {
  const group = version.groups.find((g) => g.region.name === region);
  if (group === undefined) throw new Error(`version "${version.name}" has no group in region "${region}"`);
  return group;
}
