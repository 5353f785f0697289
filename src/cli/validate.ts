import { readConfigFile } from '../config/document.js';
import { ConfigError, formatIssue, type ConfigIssue } from '../config/issues.js';
import { validateRoutingDocument } from '../config/routing-document.js';
import { buildStaticConfig, environmentFlags } from '../config/static-load.js';
import { parseFlags, UsageError } from './args.js';
import { USAGE } from './help.js';

const STATIC_SECTIONS = ['node', 'proxy', 'admin', 'dns', 'store', 'geo'];
const ROUTING_SECTIONS = ['regions', 'services', 'routes'];

/** Every problem of a routing document as a router would judge it (schema, cross references, emptiness). No connection is opened. */
export function routingIssues(raw: unknown): { issues: readonly ConfigIssue[]; counts: string } {
  const { doc, issues, usable } = validateRoutingDocument(raw);
  return { issues, counts: `${Object.keys(doc.regions).length} regions, ${usable.services.size} services, ${usable.routes.size} routes` };
}

function detectKind(raw: unknown): 'routes' | 'config' {
  if (raw === null || typeof raw !== 'object') return 'routes';
  const keys = Object.keys(raw);
  if (keys.some((k) => STATIC_SECTIONS.includes(k))) return 'config';
  if (keys.some((k) => ROUTING_SECTIONS.includes(k))) return 'routes';
  return 'routes';
}

async function validateFile(file: string, kind: 'routes' | 'config' | undefined): Promise<{ issues: readonly ConfigIssue[]; summary: string }> {
  const raw = await readConfigFile(file);
  if ((kind ?? detectKind(raw)) === 'routes') {
    const { issues, counts } = routingIssues(raw);
    return { issues, summary: `routing table: ${counts}` };
  }
  // Judged as `meridian start` would, with MERIDIAN_ADMIN_TOKEN.
  const config = buildStaticConfig(raw, environmentFlags());
  if (config.store.file === undefined) return { issues: [], summary: 'static configuration' };
  const routes = await validateFile(config.store.file, 'routes').catch((err: unknown) => {
    if (err instanceof ConfigError) return { issues: [...err.issues], summary: '' };
    throw err;
  });
  const prefixed = routes.issues.map((i) => ({ path: i.path.startsWith(config.store.file as string) ? i.path : `${config.store.file as string}: ${i.path}`, message: i.message }));
  return { issues: prefixed, summary: `static configuration; ${routes.summary}` };
}

/** `meridian validate FILE`: exit 0 when valid, 1 with every problem as `path: message` on stderr. */
export async function validateCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { kind: { type: 'string' } }, { min: 1, max: 1 });
  if (values.help === true) {
    process.stdout.write(USAGE.validate ?? '');
    return 0;
  }
  const kind = values.kind;
  if (kind !== undefined && kind !== 'routes' && kind !== 'config') throw new UsageError('--kind must be "routes" or "config"');
  const file = positionals[0] as string;
  try {
    const { issues, summary } = await validateFile(file, kind);
    if (issues.length > 0) throw new ConfigError(issues);
    process.stdout.write(`${file}: valid (${summary})\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) process.stderr.write(`${formatIssue(issue)}\n`);
    process.stderr.write(`${file}: ${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}\n`);
    return 1;
  }
}
