import type { ConfigIssue } from '../config/issues.js';
import type { ObjectKind } from '../config/routing-schema.js';
import { OBJECT_KINDS, validateObject } from '../config/routing-validate.js';

/** One change of one key, as an etcd event or a listed key-value gives it. */
export interface KeyChange {
  /** The full key, prefix included. */
  readonly key: string;
  /** The new value; null when the key was deleted. */
  readonly value: string | null;
}

interface KeyEntry {
  /** The last value of this key that validated, as parsed JSON; undefined when none ever did. */
  valid: unknown;
  /** Why the current value is not the one in force; null when it is. */
  problem: string | null;
}

/**
 * The routing objects held in etcd, key by key. Each value is validated on its
 * own: an invalid value (bad JSON, or failing its schema) is reported with its
 * key while the last valid version of that key stays in force; a deleted key
 * removes its object. Keys outside regions/services/routes (such as the fleet's
 * `nodes/`) are not routing objects and are ignored.
 */
export class EtcdKeyState {
  readonly prefix: string;
  readonly #entries = new Map<string, KeyEntry>();

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** Forgets everything: a full re-list follows. */
  clear(): void {
    this.#entries.clear();
  }

  /** Applies changes (one etcd revision, or a whole listing); returns whether any routing key was touched. */
  update(changes: readonly KeyChange[]): boolean {
    let touched = false;
    for (const change of changes) {
      const where = this.#locate(change.key);
      if (where === null) continue;
      touched = true;
      if (change.value === null) {
        this.#entries.delete(change.key);
        continue;
      }
      const entry = this.#entries.get(change.key) ?? { valid: undefined, problem: null };
      const problem = this.#check(where.kind, where.name, change.value);
      if (problem.ok) {
        entry.valid = problem.value;
        entry.problem = null;
      } else {
        entry.problem = problem.message;
      }
      this.#entries.set(change.key, entry);
    }
    return touched;
  }

  /** The routing document of every key's last valid value. */
  document(): Record<ObjectKind, Record<string, unknown>> {
    const doc: Record<ObjectKind, Record<string, unknown>> = { regions: {}, services: {}, routes: {} };
    for (const [key, entry] of this.#entries) {
      const where = this.#locate(key);
      if (where === null || entry.valid === undefined) continue;
      doc[where.kind][where.name] = entry.valid;
    }
    return doc;
  }

  /** Keys whose current value is rejected, with the reason and whether an older version stays in force. */
  issues(): ConfigIssue[] {
    const out: ConfigIssue[] = [];
    for (const [key, entry] of this.#entries) {
      if (entry.problem === null) continue;
      const kept = entry.valid === undefined ? 'no valid version: the object is left out' : 'the last valid version stays in force';
      out.push({ path: key, message: `${entry.problem} (${kept})` });
    }
    return out;
  }

  /** Number of routing keys known (valid or not). */
  get size(): number {
    return this.#entries.size;
  }

  #locate(key: string): { kind: ObjectKind; name: string } | null {
    if (!key.startsWith(this.prefix)) return null;
    const rest = key.slice(this.prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0) return null;
    const kind = rest.slice(0, slash);
    const name = rest.slice(slash + 1);
    if (!(OBJECT_KINDS as readonly string[]).includes(kind) || name === '') return null;
    return { kind: kind as ObjectKind, name };
  }

  #check(kind: ObjectKind, name: string, text: string): { ok: true; value: unknown } | { ok: false; message: string } {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { ok: false, message: `not valid JSON: ${(err as Error).message}` };
    }
    const result = validateObject(kind, name, value);
    if (!result.ok) return { ok: false, message: result.issues.map((i) => `${i.path}: ${i.message}`).join('; ') };
    return { ok: true, value };
  }
}
