import { readConfigFile } from '../config/document.js';
import { ConfigError } from '../config/issues.js';
import { validateRoutingObjects } from '../config/routing-validate.js';
import { commitPlan, ensureAcceptable, planApply, readRoutingKeys } from '../store/etcd-writer.js';
import { parseFlags, UsageError } from './args.js';
import { ETCD_FLAGS } from './etcd-flags.js';
import { withEtcd } from './etcd-session.js';
import { USAGE } from './help.js';

/**
 * `meridian apply -f FILE [--prune] [--dry-run]`: validates every object of the
 * file, then judges the table etcd would hold after the write (the other keys
 * as read) the way a router would, refusing what a router would not apply;
 * then writes every changed object in one etcd transaction that fails if any
 * of those keys changed since it was read; prints what changed.
 */
export async function applyCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags(argv, { ...ETCD_FLAGS, file: { type: 'string', short: 'f' }, prune: { type: 'boolean' }, 'dry-run': { type: 'boolean' } }, { min: 0, max: 0 });
  if (values.help === true) {
    process.stdout.write(USAGE.apply ?? '');
    return 0;
  }
  if (values.file === undefined) throw new UsageError('-f FILE is required');
  const file = values.file;
  const raw = await readConfigFile(file);
  if (raw === null || raw === undefined) throw new ConfigError([{ path: file, message: 'the file is empty: nothing to apply', reason: 'empty' }]);
  const { issues } = validateRoutingObjects(raw);
  if (issues.length > 0) throw new ConfigError(issues.map((i) => ({ ...i, path: `${file}: ${i.path}` })));
  return withEtcd(values, async (client, prefix) => {
    const current = await readRoutingKeys(client, prefix);
    const plan = planApply(prefix, raw as Record<string, unknown>, current, values.prune === true);
    await ensureAcceptable(prefix, current, plan);
    const dryRun = values['dry-run'] === true;
    const verb = { create: dryRun ? 'would create' : 'created', update: dryRun ? 'would update' : 'updated', delete: dryRun ? 'would delete' : 'deleted' };
    let unchanged = 0;
    for (const p of plan) {
      if (p.action === 'unchanged') unchanged++;
      else process.stdout.write(`${verb[p.action]} ${p.key}\n`);
    }
    const revision = dryRun ? null : await commitPlan(client, plan, current);
    process.stdout.write(`${plan.length - unchanged} changed, ${unchanged} unchanged${revision === null ? '' : ` (revision ${revision})`}${dryRun ? ' (dry run: nothing written)' : ''}\n`);
    return 0;
  });
}
