import type { RegionSpec, ServiceSpec } from '../config/routing-schema.js';
import { validateObject } from '../config/routing-validate.js';
import { formatHostPort } from '../net/address.js';
import type { NodeView } from '../store/fleet.js';

/** Where an endpoint is listed: a service's version in a region. */
export interface EndpointUse {
  readonly service: string;
  readonly version: string;
  readonly region: string;
  readonly address: string;
}

/** An endpoint a node sees down, with every place the routing table lists it (none when no service lists it any more). */
export interface DownEndpoint {
  readonly node: string;
  readonly address: string;
  readonly reason: string;
  readonly since: string;
  readonly uses: readonly EndpointUse[];
}

/** What `meridian status` shows: the nodes' published views as they are, then what is drained and what is down. */
export interface FleetStatus {
  readonly revision: number;
  readonly nodes: readonly NodeView[];
  readonly drained: { readonly regions: readonly string[]; readonly endpoints: readonly EndpointUse[] };
  readonly down: readonly DownEndpoint[];
}

/** host:port without a scheme: a node names an endpoint by its connection, which may be TLS though the table wrote no scheme. */
function hostPort(address: string): string {
  return address.replace(/^https?:\/\//, '');
}

/** The address a node's health key names: the published one, else the key's first word (views of older nodes). */
function viewAddress(key: string, address: string | undefined): string {
  return address ?? key.split(' ')[0] ?? key;
}

/**
 * Joins the nodes' views with the routing objects (raw JSON by `kind/name`):
 * drained regions and endpoints from the table, down endpoints from the views,
 * each named by service, version and region. Objects that do not validate are skipped.
 */
export function fleetStatus(revision: number, nodes: readonly NodeView[], objects: ReadonlyMap<string, unknown>): FleetStatus {
  const drainedRegions: string[] = [];
  const uses: Array<EndpointUse & { drain: boolean }> = [];
  for (const [path, value] of objects) {
    const [kind, name] = path.split('/', 2) as [string, string];
    if (kind === 'regions') {
      const checked = validateObject('regions', name, value);
      if (checked.ok && (checked.value as RegionSpec).drain) drainedRegions.push(name);
    } else if (kind === 'services') {
      const checked = validateObject('services', name, value);
      if (!checked.ok) continue;
      for (const [version, spec] of Object.entries((checked.value as ServiceSpec).versions)) {
        for (const [region, endpoints] of Object.entries(spec.endpoints)) {
          for (const e of endpoints) {
            const address = `${e.scheme === null ? '' : `${e.scheme}://`}${formatHostPort(e.address)}`;
            uses.push({ service: name, version, region, address, drain: e.drain });
          }
        }
      }
    }
  }
  const strip = ({ service, version, region, address }: EndpointUse): EndpointUse => ({ service, version, region, address });
  const down: DownEndpoint[] = [];
  for (const view of nodes) {
    for (const [key, ep] of Object.entries(view.endpoints ?? {})) {
      if (ep.up) continue;
      const address = viewAddress(key, ep.address);
      const listed = uses.filter((u) => hostPort(u.address) === hostPort(address)).map(strip);
      down.push({ node: view.node, address, reason: ep.reason, since: ep.since, uses: listed });
    }
  }
  return { revision, nodes, drained: { regions: drainedRegions, endpoints: uses.filter((u) => u.drain).map(strip) }, down };
}
