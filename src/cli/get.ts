import { OBJECT_KINDS } from '../config/routing-validate.js';
import { readRoutingKeys } from '../store/etcd-writer.js';
import { parseFlags, UsageError } from './args.js';
import { ETCD_FLAGS, etcdFromFlags } from './etcd-flags.js';
import { USAGE } from './help.js';

/** `meridian get [regions|services|routes] [NAME]`: the routing objects in etcd, as JSON. */
export async function getCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, ETCD_FLAGS, { min: 0, max: 2 });
  if (values.help === true) {
    process.stdout.write(USAGE.get ?? '');
    return 0;
  }
  const [kind, name] = positionals;
  if (kind !== undefined && !(OBJECT_KINDS as readonly string[]).includes(kind)) throw new UsageError(`unknown kind "${kind}" (expected regions, services or routes)`);
  const { client, prefix } = await etcdFromFlags(values);
  try {
    const keys = await readRoutingKeys(client, prefix);
    const doc: Record<string, Record<string, unknown>> = {};
    for (const { key, value } of keys.values()) {
      const [k, n] = key.slice(prefix.length).split('/', 2) as [string, string];
      if (kind !== undefined && k !== kind) continue;
      if (name !== undefined && n !== name) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        parsed = { invalidJson: value };
      }
      (doc[k] ??= {})[n] = parsed;
    }
    if (name !== undefined) {
      const found = doc[kind as string]?.[name];
      if (found === undefined) {
        process.stderr.write(`meridian: no ${kind as string}/${name} under ${prefix}\n`);
        return 1;
      }
      process.stdout.write(`${JSON.stringify(found, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(`${JSON.stringify(kind === undefined ? doc : (doc[kind] ?? {}), null, 2)}\n`);
    return 0;
  } finally {
    client.close();
  }
}
