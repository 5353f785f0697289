import { isDeepStrictEqual } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { ConfigError, formatIssue, type ConfigIssue } from '../config/issues.js';
import type { ObjectKind } from '../config/routing-schema.js';
import { OBJECT_KINDS } from '../config/routing-validate.js';
import { EtcdKeyState } from './etcd-keys.js';

/** One routing key as read from etcd, with the revision that last changed it. */
export interface StoredKey {
  readonly key: string;
  readonly value: string;
  readonly modRevision: string;
}

/** What an apply does to one key. */
export interface KeyPlan {
  readonly action: 'create' | 'update' | 'delete' | 'unchanged';
  readonly key: string;
  /** The JSON to write (create, update). */
  readonly value?: string;
}

/** Raised when a key changed between reading it and writing it: nothing was written. */
export class ConflictError extends Error {
  override readonly name = 'ConflictError';
}

/** The key of an object. */
export function objectKey(prefix: string, kind: ObjectKind, name: string): string {
  return `${prefix}${kind}/${name}`;
}

/** Every routing key (regions, services, routes) under the prefix. */
export async function readRoutingKeys(client: Etcd3, prefix: string): Promise<Map<string, StoredKey>> {
  const res = await client.getAll().prefix(prefix).exec();
  const keys = new Map<string, StoredKey>();
  for (const kv of res.kvs) {
    const key = kv.key.toString();
    const kind = key.slice(prefix.length).split('/')[0] ?? '';
    if (!(OBJECT_KINDS as readonly string[]).includes(kind)) continue;
    keys.set(key, { key, value: kv.value.toString(), modRevision: kv.mod_revision });
  }
  return keys;
}

function sameJson(a: string, b: unknown): boolean {
  try {
    return isDeepStrictEqual(JSON.parse(a), b);
  } catch {
    return false;
  }
}

/** Compares a routing document with the keys in etcd: what to create, update, leave, and (with prune) delete. */
export function planApply(prefix: string, document: Record<string, unknown>, current: ReadonlyMap<string, StoredKey>, prune: boolean): KeyPlan[] {
  const plan: KeyPlan[] = [];
  const wanted = new Set<string>();
  for (const kind of OBJECT_KINDS) {
    const section = (document[kind] ?? {}) as Record<string, unknown>;
    for (const [name, value] of Object.entries(section)) {
      const key = objectKey(prefix, kind, name);
      wanted.add(key);
      const existing = current.get(key);
      if (existing === undefined) plan.push({ action: 'create', key, value: JSON.stringify(value) });
      else if (sameJson(existing.value, value)) plan.push({ action: 'unchanged', key });
      else plan.push({ action: 'update', key, value: JSON.stringify(value) });
    }
  }
  if (prune) for (const key of current.keys()) if (!wanted.has(key)) plan.push({ action: 'delete', key });
  return plan;
}

/**
 * Judges a plan as a router would: the keys as read, then the plan as one
 * revision. Returns what it would refuse: every key the plan writes that a
 * router would hold back or reject, and problems the plan would add elsewhere.
 */
export async function judgePlan(prefix: string, current: ReadonlyMap<string, StoredKey>, plan: readonly KeyPlan[]): Promise<ConfigIssue[]> {
  const state = new EtcdKeyState(prefix);
  await state.update([...current.values()].map((k) => ({ key: k.key, value: k.value })));
  const before = new Set([...state.refusals(), ...state.documentIssues()].map(formatIssue));
  const changes = plan.filter((p) => p.action !== 'unchanged');
  await state.update(changes.map((p) => ({ key: p.key, value: p.action === 'delete' ? null : (p.value as string) })));
  const written = new Set(changes.map((p) => p.key));
  const after = [...state.refusals(), ...state.documentIssues()];
  return after.filter((issue) => written.has(issue.path) || !before.has(formatIssue(issue)));
}

/** Refuses a plan a router would not apply in full: throws ConfigError listing why, having written nothing. */
export async function ensureAcceptable(prefix: string, current: ReadonlyMap<string, StoredKey>, plan: readonly KeyPlan[]): Promise<void> {
  const problems = await judgePlan(prefix, current, plan);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => ({ ...p, message: `${p.message} (refused: nothing was written)` })));
}

/**
 * Writes a plan in one transaction that fails if any key it touches changed
 * since `current` was read (created keys must still be absent). Returns the
 * revision of the write; throws ConflictError when another writer got there first.
 */
export async function commitPlan(client: Etcd3, plan: readonly KeyPlan[], current: ReadonlyMap<string, StoredKey>): Promise<number | null> {
  const changes = plan.filter((p) => p.action !== 'unchanged');
  if (changes.length === 0) return null;
  const first = changes[0] as KeyPlan;
  const guard = (p: KeyPlan): [string, 'Mod' | 'Create', '==', number | string] => {
    const existing = current.get(p.key);
    return existing === undefined ? [p.key, 'Create', '==', 0] : [p.key, 'Mod', '==', existing.modRevision];
  };
  let txn = client.if(...guard(first));
  for (const p of changes.slice(1)) txn = txn.and(...guard(p));
  const ops = changes.map((p) => (p.action === 'delete' ? client.delete().key(p.key) : client.put(p.key).value(p.value as string)));
  const res = await txn.then(...ops).commit();
  if (!res.succeeded) throw new ConflictError('a key changed since it was read; nothing was written');
  return Number(res.header.revision);
}

/**
 * Read-modify-write of one or more keys with compare-and-swap, retried a few
 * times when another writer changed them in between. `edit` receives the
 * parsed current values and returns the new ones (or throws to refuse); the
 * result is refused, unwritten, when a router would not apply all of it.
 */
export async function editKeys(
  client: Etcd3,
  prefix: string,
  edit: (current: ReadonlyMap<string, StoredKey>) => Map<string, unknown>,
  attempts = 5,
): Promise<{ revision: number | null; changed: string[] }> {
  for (let i = 1; ; i++) {
    const current = await readRoutingKeys(client, prefix);
    const next = edit(current);
    const plan: KeyPlan[] = [...next].map(([key, value]) => {
      const existing = current.get(key);
      if (existing !== undefined && sameJson(existing.value, value)) return { action: 'unchanged', key };
      return { action: existing === undefined ? 'create' : 'update', key, value: JSON.stringify(value) };
    });
    await ensureAcceptable(prefix, current, plan);
    try {
      const revision = await commitPlan(client, plan, current);
      return { revision, changed: plan.filter((p) => p.action !== 'unchanged').map((p) => p.key) };
    } catch (err) {
      if (!(err instanceof ConflictError) || i >= attempts) throw err;
    }
  }
}
