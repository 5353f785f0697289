import type { ObjectKind, RegionSpec, RouteSpec, ServiceSpec } from '../config/routing-schema.js';
import { validateObject } from '../config/routing-validate.js';
import { singular } from './kinds.js';
import { renderTable } from './table.js';

/** The routing objects read from etcd, by kind and name: parsed JSON, or `{ invalidJson }` holding text that is not JSON. */
export type StoredDocument = Partial<Record<ObjectKind, Record<string, unknown>>>;

const HEADERS: Readonly<Record<ObjectKind, readonly string[]>> = {
  regions: ['NAME', 'LOCATION', 'COUNTRIES', 'DRAINED', 'ENDPOINTS'],
  services: ['NAME', 'VERSIONS', 'REGIONS', 'STEERING', 'ENDPOINTS', 'DRAINED'],
  routes: ['NAME', 'HOSTS', 'PATH', 'SERVICE', 'REDIRECT-HTTPS'],
};

function isInvalidJson(value: unknown): value is { invalidJson: string } {
  return value !== null && typeof value === 'object' && Object.keys(value).length === 1 && 'invalidJson' in value;
}

/** An object validated as a router would, or why it is invalid: a table shows the reason in place instead of failing. */
function parsed<S>(kind: ObjectKind, name: string, value: unknown): { spec: S } | { invalid: string } {
  if (isInvalidJson(value)) return { invalid: 'not JSON' };
  const result = validateObject(kind, name, value);
  if (result.ok) return { spec: result.value as S };
  const first = result.issues[0];
  const more = result.issues.length > 1 ? ` (+${result.issues.length - 1} more)` : '';
  return { invalid: `${first === undefined ? '?' : `${first.path.replace(`${kind}.${name}`, '').replace(/^\./, '') || 'value'}: ${first.message}`}${more}` };
}

/** The row of an object that does not validate: INVALID in its columns, the reason kept for a note under the table (a long reason would widen a column for every row). */
function invalidRow(name: string, reason: string): string[] {
  return Object.assign([name, '<invalid>'], { reason });
}

function reasonOf(row: string[]): string | undefined {
  return (row as string[] & { reason?: string }).reason;
}

function list(items: readonly string[]): string {
  return items.length === 0 ? '-' : items.join(',');
}

/** Every valid service's endpoint lists, with the region they serve. */
function endpointLists(services: Record<string, unknown>): Array<{ region: string; drained: boolean[] }> {
  const out: Array<{ region: string; drained: boolean[] }> = [];
  for (const [name, value] of Object.entries(services)) {
    const p = parsed<ServiceSpec>('services', name, value);
    if (!('spec' in p)) continue;
    for (const version of Object.values(p.spec.versions)) {
      for (const [region, endpoints] of Object.entries(version.endpoints)) out.push({ region, drained: endpoints.map((e) => e.drain) });
    }
  }
  return out;
}

function regionRow(name: string, value: unknown, services: Record<string, unknown>): string[] {
  const p = parsed<RegionSpec>('regions', name, value);
  if (!('spec' in p)) return invalidRow(name, p.invalid);
  const r = p.spec;
  const endpoints = endpointLists(services)
    .filter((l) => l.region === name)
    .reduce((n, l) => n + l.drained.length, 0);
  return [name, `${r.location.lat},${r.location.lon}`, list(r.countries), String(r.drain), String(endpoints)];
}

function serviceRow(name: string, value: unknown): string[] {
  const p = parsed<ServiceSpec>('services', name, value);
  if (!('spec' in p)) return invalidRow(name, p.invalid);
  const s = p.spec;
  const versions = Object.keys(s.versions).map((v) => `${v}=${s.split === undefined ? 1 : (s.split.weights[v] ?? 0)}`);
  const regions = new Set<string>();
  let endpoints = 0;
  let drained = 0;
  for (const version of Object.values(s.versions)) {
    for (const [region, entries] of Object.entries(version.endpoints)) {
      regions.add(region);
      endpoints += entries.length;
      drained += entries.filter((e) => e.drain).length;
    }
  }
  return [name, list(versions), list([...regions]), s.steering, String(endpoints), String(drained)];
}

function routeRow(name: string, value: unknown): string[] {
  const p = parsed<RouteSpec>('routes', name, value);
  if (!('spec' in p)) return invalidRow(name, p.invalid);
  const r = p.spec;
  return [name, r.hosts.length === 0 ? '*' : r.hosts.join(','), r.pathPrefix, r.service, String(r.redirectToHttps)];
}

/** The table rows of one kind's objects; `services` is read for the endpoint counts of regions. */
function rows(kind: ObjectKind, objects: Record<string, unknown>, services: Record<string, unknown>, qualify: boolean): string[][] {
  return Object.entries(objects).map(([name, value]) => {
    const row = kind === 'regions' ? regionRow(name, value, services) : kind === 'services' ? serviceRow(name, value) : routeRow(name, value);
    if (qualify) row[0] = `${singular(kind)}/${row[0] ?? name}`;
    return row;
  });
}

/**
 * kubectl-style tables of the given kinds, one after another; names are
 * written `kind/name` when more than one kind is shown.
 */
export function objectTables(kinds: readonly ObjectKind[], doc: StoredDocument, allServices: Record<string, unknown>, prefix: string): string {
  const shown = kinds.filter((kind) => Object.keys(doc[kind] ?? {}).length > 0);
  if (shown.length === 0) return `No ${kinds.length === 1 ? (kinds[0] ?? 'objects') : 'routing objects'} found under ${prefix}\n`;
  return shown
    .map((kind) => {
      const table = rows(kind, doc[kind] ?? {}, allServices, kinds.length > 1);
      const notes = table.flatMap((row) => {
        const reason = reasonOf(row);
        return reason === undefined ? [] : [`${kind}/${(row[0] ?? '').replace(/^[a-z]+\//, '')}: invalid: ${reason}\n`];
      });
      return renderTable(HEADERS[kind], table) + notes.join('');
    })
    .join('\n');
}
