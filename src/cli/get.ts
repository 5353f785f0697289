import type { ObjectKind } from '../config/routing-schema.js';
import { OBJECT_KINDS } from '../config/routing-validate.js';
import { readRoutingKeys } from '../store/etcd-writer.js';
import { parseFlags } from './args.js';
import { ETCD_FLAGS } from './etcd-flags.js';
import { withEtcd } from './etcd-session.js';
import { objectTables, type StoredDocument } from './get-tables.js';
import { USAGE } from './help.js';
import { parseKind, singular } from './kinds.js';
import { formatDocument, OUTPUT_FLAG, outputFormat } from './output.js';

/** `meridian get [KIND] [NAME] [-o json|yaml|table]`: the routing objects in etcd (kinds singular or plural). */
export async function getCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { ...ETCD_FLAGS, ...OUTPUT_FLAG }, { min: 0, max: 2 });
  if (values.help === true) {
    process.stdout.write(USAGE.get ?? '');
    return 0;
  }
  const [kindWord, name] = positionals;
  const kind: ObjectKind | undefined = kindWord === undefined ? undefined : parseKind(kindWord);
  const format = outputFormat(values.output);
  return withEtcd(values, async (client, prefix) => {
    const keys = await readRoutingKeys(client, prefix);
    const all: StoredDocument = {};
    for (const { key, value } of keys.values()) {
      const [k, n] = key.slice(prefix.length).split('/', 2) as [ObjectKind, string];
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        parsed = { invalidJson: value };
      }
      (all[k] ??= {})[n] = parsed;
    }
    const services = all.services ?? {};
    if (kind === undefined) {
      process.stdout.write(formatDocument(format, all, () => objectTables(OBJECT_KINDS, all, services, prefix)));
      return 0;
    }
    if (name === undefined) {
      const objects = all[kind] ?? {};
      process.stdout.write(formatDocument(format, objects, () => objectTables([kind], { [kind]: objects }, services, prefix)));
      return 0;
    }
    const found = all[kind]?.[name];
    if (found === undefined) {
      process.stderr.write(`meridian: no ${singular(kind)} "${name}" under ${prefix}${kind}/\n`);
      return 1;
    }
    process.stdout.write(formatDocument(format, found, () => objectTables([kind], { [kind]: { [name]: found } }, services, prefix)));
    return 0;
  });
}
