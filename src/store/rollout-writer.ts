import type { Etcd3 } from 'etcd3';
import { ConfigError } from '../config/issues.js';
import { rolloutSchema, type RolloutSpec } from '../config/rollout-schema.js';
import { validateObject } from '../config/routing-validate.js';
import { commitPlan, ConflictError, ensureAcceptable, objectKey, readRoutingKeys, type KeyPlan, type StoredKey } from './etcd-writer.js';

/** The key of a service's rollout. */
export function rolloutKey(prefix: string, service: string): string {
  return `${prefix}rollouts/${service}`;
}

/** A rollout key as read: the JSON as written (durations as text), the validated spec, and its revision. */
export interface StoredRollout {
  readonly key: string;
  readonly raw: Record<string, unknown>;
  readonly spec: RolloutSpec;
  readonly modRevision: number;
}

/** Validates a rollout's JSON text; throws a ConfigError naming the key when it is not a rollout. */
export function parseRollout(key: string, text: string): { raw: Record<string, unknown>; spec: RolloutSpec } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([{ path: key, message: `not valid JSON: ${(err as Error).message}` }]);
  }
  const parsed = rolloutSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => ({ path: [key, ...i.path.map(String)].join('.'), message: i.message })));
  return { raw: raw as Record<string, unknown>, spec: parsed.data };
}

/** A service object with the from- and to-version's weights set (other versions keep theirs). */
export function withWeights(service: string, stored: StoredKey, from: string, to: string, weights: { from: number; to: number }): Record<string, unknown> {
  const spec = JSON.parse(stored.value) as Record<string, unknown> & { split?: { weights?: Record<string, number> } };
  const next = { ...spec, split: { ...(spec.split ?? {}), weights: { ...(spec.split?.weights ?? {}), [from]: weights.from, [to]: weights.to } } };
  const checked = validateObject('services', service, next);
  if (!checked.ok) throw new ConfigError(checked.issues);
  return next;
}

/** What one edit of a rollout writes: its new JSON, and the service's when weights move. */
export interface RolloutEdit {
  readonly rollout: Record<string, unknown>;
  readonly service?: Record<string, unknown>;
}

/**
 * Read-modify-write of a service's rollout (and its service, when weights
 * move) in one transaction guarded on both keys' revisions, retried a few
 * times when another writer got there first. The rollout written is
 * validated; the service is refused, unwritten, when a router would not apply
 * it. Writing both keys at one revision is what lets the leading node tell its
 * own weight changes from an operator's: a service written after its rollout
 * was changed by someone else.
 */
export async function editRollout(
  client: Etcd3,
  prefix: string,
  service: string,
  edit: (rollout: StoredRollout | null, service: StoredKey) => RolloutEdit,
  attempts = 5,
): Promise<{ revision: number | null; rollout: RolloutSpec }> {
  const key = rolloutKey(prefix, service);
  const serviceKey = objectKey(prefix, 'services', service);
  for (let i = 1; ; i++) {
    const [routing, rolloutRes] = await Promise.all([readRoutingKeys(client, prefix), client.get(key).exec()]);
    const storedService = routing.get(serviceKey);
    if (storedService === undefined) throw new ConfigError([{ path: serviceKey, message: 'no such service' }]);
    const kv = rolloutRes.kvs[0];
    const current = kv === undefined ? null : { key, ...parseRollout(key, kv.value.toString()), modRevision: Number(kv.mod_revision) };
    const next = edit(current, storedService);
    const spec = parseRollout(key, JSON.stringify(next.rollout)).spec;
    const plan: KeyPlan[] = [{ action: current === null ? 'create' : 'update', key, value: JSON.stringify(next.rollout) }];
    if (next.service !== undefined) {
      const servicePlan: KeyPlan = { action: 'update', key: serviceKey, value: JSON.stringify(next.service) };
      await ensureAcceptable(prefix, routing, [servicePlan]);
      plan.push(servicePlan);
    }
    const guarded = new Map(routing);
    if (kv !== undefined) guarded.set(key, { key, value: kv.value.toString(), modRevision: kv.mod_revision });
    try {
      return { revision: await commitPlan(client, plan, guarded), rollout: spec };
    } catch (err) {
      if (!(err instanceof ConflictError) || i >= attempts) throw err;
    }
  }
}

/** A service's rollout as it stands, or null. */
export async function readRollout(client: Etcd3, prefix: string, service: string): Promise<StoredRollout | null> {
  const key = rolloutKey(prefix, service);
  const res = await client.get(key).exec();
  const kv = res.kvs[0];
  return kv === undefined ? null : { key, ...parseRollout(key, kv.value.toString()), modRevision: Number(kv.mod_revision) };
}
