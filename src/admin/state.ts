import { formatDuration } from '../config/duration.js';
import type { StaticConfig } from '../config/static-schema.js';
import type { Endpoint, RoutingTable } from '../routing/table.js';
import type { TableApplier } from '../store/applier.js';

/** JSON-ready view of one endpoint. */
function endpointState(ep: Endpoint): Record<string, unknown> {
  return {
    address: ep.key,
    ...(ep.tls === null ? {} : { tls: { serverName: ep.tls.serverName, ca: ep.tls.caFile, verify: ep.tls.verify } }),
    ...(ep.address.protocol === undefined ? {} : { protocol: ep.address.protocol }),
    weight: ep.weight,
    drain: ep.drain,
    health: ep.health.state,
    up: ep.health.up,
    ejected: ep.health.ejected,
    reason: ep.health.reason,
    since: new Date(ep.health.changedAt).toISOString(),
    lastCheck: ep.health.lastCheckAt === 0 ? null : new Date(ep.health.lastCheckAt).toISOString(),
    checkRttMs: ep.health.lastCheckRttMs,
    outstanding: ep.upstream.outstanding,
    latencyMs: Number.isNaN(ep.upstream.latencyMs) ? null : Math.round(ep.upstream.latencyMs * 100) / 100,
  };
}

function tableState(table: RoutingTable): Record<string, unknown> {
  const regions = Object.fromEntries([...table.regions.values()].map((r) => [r.name, { location: r.location, countries: r.countries, drain: r.drain, edge: r.edge }]));
  const routes = Object.fromEntries(
    [...table.routes.values()].map((r) => [r.name, { hosts: r.spec.hosts, pathPrefix: r.spec.pathPrefix, service: r.service.name }]),
  );
  const services = Object.fromEntries(
    [...table.services.values()].map((s) => [
      s.name,
      {
        steering: s.spec.steering,
        whenAllDown: s.spec.whenAllDown,
        timeouts: { connect: formatDuration(s.connectTimeoutMs), request: formatDuration(s.requestTimeoutMs) },
        sticky: s.split.sticky,
        override: s.split.overrideHeader,
        versions: Object.fromEntries(
          [...s.versions.values()].map((v) => [
            v.name,
            {
              weight: v.weight,
              regions: Object.fromEntries(v.groups.map((g) => [g.region.name, { drain: g.region.drain, endpoints: g.all.map(endpointState) }])),
            },
          ]),
        ),
      },
    ]),
  );
  return { regions, services, routes };
}

/** The document served at `GET /api/v1/state` (`startedAt`: when the node started, ms since the epoch). */
export function buildState(config: StaticConfig, applier: TableApplier, ready: boolean, startedAt: number): Record<string, unknown> {
  const table = applier.current;
  return {
    node: { name: config.node.name, region: config.node.region ?? null, location: config.node.location ?? null },
    startedAt: new Date(startedAt).toISOString(),
    uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
    ready,
    revision: table?.revision ?? 0,
    source: table?.source ?? null,
    stale: applier.stale,
    appliedAt: applier.appliedAt?.toISOString() ?? null,
    errors: applier.issues.map((i) => ({ key: i.path, message: i.message })),
    history: applier.history.entries(),
    ...(table === null ? { regions: {}, services: {}, routes: {} } : tableState(table)),
  };
}
