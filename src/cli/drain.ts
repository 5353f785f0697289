import { ConfigError } from '../config/issues.js';
import { editKeys, objectKey } from '../store/etcd-writer.js';
import { parseFlags, UsageError } from './args.js';
import { ETCD_FLAGS } from './etcd-flags.js';
import { withEtcd } from './etcd-session.js';
import { USAGE } from './help.js';

type EndpointEntry = string | { address: string; weight?: number; drain?: boolean };
type ServiceJson = { versions?: Record<string, { endpoints?: Record<string, EndpointEntry[]> }> };

/** What drain acts on, written singular or plural. */
const TARGETS: Readonly<Record<string, 'region' | 'endpoint'>> = { region: 'region', regions: 'region', endpoint: 'endpoint', endpoints: 'endpoint' };

/** Whether an endpoint entry is the one NAME means: the same text, or, for a NAME without a scheme, the same host:port under either scheme. */
function isEndpoint(entryAddress: string, name: string): boolean {
  return entryAddress === name || (!name.includes('://') && entryAddress.replace(/^https?:\/\//, '') === name);
}

/** Sets drain on every entry of `address` in a service; returns whether any entry matched. */
function drainEndpoint(spec: ServiceJson, address: string, drain: boolean): boolean {
  let found = false;
  for (const version of Object.values(spec.versions ?? {})) {
    for (const list of Object.values(version.endpoints ?? {})) {
      list.forEach((entry, i) => {
        const entryAddress = typeof entry === 'string' ? entry : entry.address;
        if (!isEndpoint(entryAddress, address)) return;
        found = true;
        list[i] = typeof entry === 'string' ? { address: entry, drain } : { ...entry, drain };
      });
    }
  }
  return found;
}

/**
 * `meridian drain|undrain region(s)|endpoint(s) NAME`: sets `drain` on a region, or on
 * an endpoint address wherever services list it, in one compare-and-swap transaction.
 */
export async function drainCommand(argv: readonly string[], drain: boolean): Promise<number> {
  const { values, positionals } = parseFlags(argv, ETCD_FLAGS, { min: 2, max: 2 });
  if (values.help === true) {
    process.stdout.write(USAGE.drain ?? '');
    return 0;
  }
  const [word, name] = positionals as [string, string];
  const what = Object.hasOwn(TARGETS, word) ? TARGETS[word] : undefined;
  if (what === undefined) throw new UsageError(`expected "region" or "endpoint", got "${word}"`);
  return withEtcd(values, async (client, prefix) => {
    const { revision, changed } = await editKeys(client, prefix, (current) => {
      const next = new Map<string, unknown>();
      if (what === 'region') {
        const key = objectKey(prefix, 'regions', name);
        const stored = current.get(key);
        if (stored === undefined) throw new ConfigError([{ path: key, message: 'no such region' }]);
        next.set(key, { ...(JSON.parse(stored.value) as Record<string, unknown>), drain });
        return next;
      }
      for (const stored of current.values()) {
        if (!stored.key.startsWith(`${prefix}services/`)) continue;
        const spec = JSON.parse(stored.value) as ServiceJson;
        if (drainEndpoint(spec, name, drain)) next.set(stored.key, spec);
      }
      if (next.size === 0) throw new ConfigError([{ path: name, message: 'no service lists this endpoint' }]);
      return next;
    });
    const verb = drain ? 'drained' : 'undrained';
    process.stdout.write(`${what} ${name} ${revision === null ? `already ${verb}` : `${verb} (${changed.map((k) => k.slice(prefix.length)).join(', ')}; revision ${revision})`}\n`);
    return 0;
  });
}
