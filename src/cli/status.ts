import type { NodeView } from '../store/fleet.js';
import { parseFlags } from './args.js';
import { ETCD_FLAGS, etcdFromFlags } from './etcd-flags.js';
import { USAGE } from './help.js';

/** One line per down endpoint of a node's view. */
function downLines(view: NodeView): string[] {
  return Object.entries(view.endpoints ?? {})
    .filter(([, ep]) => !ep.up)
    .map(([key, ep]) => `    down ${key}: ${ep.reason} since ${ep.since}`);
}

/**
 * `meridian status`: the fleet as etcd knows it. Every running node publishes
 * its health view under a lease; a node that died has no key any more.
 */
export async function statusCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags(argv, { ...ETCD_FLAGS, json: { type: 'boolean' } }, { min: 0, max: 0 });
  if (values.help === true) {
    process.stdout.write(USAGE.status ?? '');
    return 0;
  }
  const { client, prefix } = await etcdFromFlags(values);
  try {
    const res = await client.getAll().prefix(`${prefix}nodes/`).exec();
    const revision = Number(res.header.revision);
    const views = res.kvs.map((kv) => {
      try {
        return JSON.parse(kv.value.toString()) as NodeView;
      } catch {
        return { node: kv.key.toString().slice(`${prefix}nodes/`.length), region: null, revision: 0, updatedAt: '?', endpoints: {} } satisfies NodeView;
      }
    });
    if (values.json === true) {
      process.stdout.write(`${JSON.stringify({ revision, nodes: views }, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(`etcd revision ${revision}; ${views.length} node${views.length === 1 ? '' : 's'} alive\n`);
    for (const view of views) {
      const eps = Object.values(view.endpoints ?? {});
      const up = eps.filter((ep) => ep.up).length;
      process.stdout.write(`  ${view.node} (${view.region ?? 'no region'}): table revision ${view.revision}, endpoints ${up}/${eps.length} up, updated ${view.updatedAt}\n`);
      for (const line of downLines(view)) process.stdout.write(`${line}\n`);
    }
    return 0;
  } finally {
    client.close();
  }
}
