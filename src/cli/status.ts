import type { NodeView } from '../store/fleet.js';
import { readRoutingKeys } from '../store/etcd-writer.js';
import { parseFlags, UsageError } from './args.js';
import { ETCD_FLAGS } from './etcd-flags.js';
import { withEtcd } from './etcd-session.js';
import { fleetStatus, type FleetStatus } from './fleet-status.js';
import { USAGE } from './help.js';
import { formatDocument, OUTPUT_FLAG, outputFormat } from './output.js';
import { ago, renderTable } from './table.js';

/** A node key whose value is not a view still shows the node, with nothing known about it. */
function parseView(key: string, value: string): NodeView {
  try {
    return JSON.parse(value) as NodeView;
  } catch {
    return { node: key, region: null, revision: 0, updatedAt: '?', endpoints: {} };
  }
}

/** The fleet as readable tables: nodes, then drained regions and endpoints, then endpoints that are down. */
function statusTables(status: FleetStatus): string {
  const { nodes, drained, down } = status;
  const parts: string[] = [`etcd revision ${status.revision}; ${nodes.length} node${nodes.length === 1 ? '' : 's'} alive\n`];
  if (nodes.length > 0) {
    const rows = nodes.map((view) => {
      const eps = Object.values(view.endpoints ?? {});
      return [view.node, view.region ?? '-', String(view.revision), `${eps.filter((ep) => ep.up).length}/${eps.length} up`, ago(view.updatedAt)];
    });
    parts.push(renderTable(['NODE', 'REGION', 'TABLE-REVISION', 'ENDPOINTS', 'UPDATED'], rows));
  }
  parts.push(drained.regions.length === 0 ? 'Drained regions: none\n' : `Drained regions:\n${renderTable(['REGION'], drained.regions.map((r) => [r]))}`);
  parts.push(
    drained.endpoints.length === 0
      ? 'Drained endpoints: none\n'
      : `Drained endpoints:\n${renderTable(['SERVICE', 'VERSION', 'REGION', 'ENDPOINT'], drained.endpoints.map((u) => [u.service, u.version, u.region, u.address]))}`,
  );
  const downRows = down.flatMap((d) => {
    const uses = d.uses.length === 0 ? [{ service: '-', version: '-', region: '-', address: d.address }] : d.uses;
    return uses.map((u) => [d.node, u.service, u.version, u.region, u.address, d.reason, ago(d.since)]);
  });
  parts.push(downRows.length === 0 ? 'Down endpoints: none\n' : `Down endpoints:\n${renderTable(['NODE', 'SERVICE', 'VERSION', 'REGION', 'ENDPOINT', 'REASON', 'SINCE'], downRows)}`);
  return parts.join('\n');
}

/**
 * `meridian status`: the fleet as etcd knows it. Every running node publishes
 * its health view under a lease; a node that died has no key any more. The
 * views are joined with the routing objects to name endpoints by service,
 * version and region.
 */
export async function statusCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags(argv, { ...ETCD_FLAGS, ...OUTPUT_FLAG, json: { type: 'boolean' } }, { min: 0, max: 0 });
  if (values.help === true) {
    process.stdout.write(USAGE.status ?? '');
    return 0;
  }
  if (values.json === true && values.output !== undefined && values.output !== 'json') throw new UsageError('--json and -o disagree');
  const format = outputFormat(values.json === true ? 'json' : values.output);
  return withEtcd(values, async (client, prefix) => {
    const res = await client.getAll().prefix(`${prefix}nodes/`).exec();
    const views = res.kvs.map((kv) => parseView(kv.key.toString().slice(`${prefix}nodes/`.length), kv.value.toString()));
    const objects = new Map<string, unknown>();
    for (const { key, value } of (await readRoutingKeys(client, prefix)).values()) {
      try {
        objects.set(key.slice(prefix.length), JSON.parse(value));
      } catch {
        // A key that is not JSON drains nothing and names no endpoint; `meridian get` shows it as invalid.
      }
    }
    const status = fleetStatus(Number(res.header.revision), views, objects);
    process.stdout.write(formatDocument(format, status, () => statusTables(status)));
    return 0;
  });
}
