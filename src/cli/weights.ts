import { ConfigError } from '../config/issues.js';
import { validateObject } from '../config/routing-validate.js';
import { editKeys, objectKey } from '../store/etcd-writer.js';
import { parseFlags, UsageError } from './args.js';
import { ETCD_FLAGS } from './etcd-flags.js';
import { withEtcd } from './etcd-session.js';
import { formatDocument, outputFormat, OUTPUT_FLAG } from './output.js';
import { USAGE } from './help.js';

function parseAssignments(args: readonly string[]): Map<string, number> {
  const weights = new Map<string, number>();
  for (const arg of args) {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)=(\d+)$/.exec(arg);
    if (m === null) throw new UsageError(`"${arg}" is not VERSION=WEIGHT (a whole number)`);
    weights.set(m[1] as string, Number(m[2]));
  }
  return weights;
}

/**
 * `meridian weights SERVICE v=N ...`: sets split weights of the named versions
 * (others keep theirs) with compare-and-swap on the service key, so a
 * concurrent edit is never silently overwritten.
 */
export async function weightsCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { ...ETCD_FLAGS, ...OUTPUT_FLAG }, { min: 2, max: 64 });
  if (values.help === true) {
    process.stdout.write(USAGE.weights ?? '');
    return 0;
  }
  const [service, ...rest] = positionals as [string, ...string[]];
  const assignments = parseAssignments(rest);
  const format = values.output === undefined ? null : outputFormat(values.output);
  return withEtcd(values, async (client, prefix) => {
    const key = objectKey(prefix, 'services', service);
    let weights: Record<string, number> = {};
    const { revision } = await editKeys(client, prefix, (current) => {
      const stored = current.get(key);
      if (stored === undefined) throw new ConfigError([{ path: key, message: 'no such service' }]);
      const spec = JSON.parse(stored.value) as { versions?: Record<string, unknown>; split?: { weights?: Record<string, number> } };
      for (const version of assignments.keys()) {
        if (spec.versions?.[version] === undefined) throw new ConfigError([{ path: `${key}.versions`, message: `no version "${version}"` }]);
      }
      weights = { ...(spec.split?.weights ?? {}) };
      for (const [version, weight] of assignments) weights[version] = weight;
      const next = { ...spec, split: { ...(spec.split ?? {}), weights } };
      const checked = validateObject('services', service, next);
      if (!checked.ok) throw new ConfigError(checked.issues);
      return new Map([[key, next]]);
    });
    const shown = Object.entries(weights).map(([v, w]) => `${v}=${w}`).join(' ');
    const line = `services/${service} weights: ${shown}${revision === null ? ' (unchanged)' : ` (revision ${revision})`}\n`;
    // Without -o the result stays the line it always was, piped or not.
    process.stdout.write(format === null ? line : formatDocument(format, { service, weights, changed: revision !== null, revision }, () => line));
    return 0;
  });
}
