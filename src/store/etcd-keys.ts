import type { ConfigIssue, RejectReason } from '../config/issues.js';
import { referenceSteps, type ReferenceIssue } from '../config/routing-references.js';
import type { ObjectKind, RegionSpec, RouteSpec, RoutingDocument, ServiceSpec } from '../config/routing-schema.js';
import { OBJECT_KINDS, validateObject } from '../config/routing-validate.js';
import { runSliced } from '../config/slicing.js';

/** One change of one key, as an etcd event or a listed key-value gives it. */
export interface KeyChange {
  /** The full key, prefix included. */
  readonly key: string;
  /** The new value; null when the key was deleted. */
  readonly value: string | null;
}

type Spec = RegionSpec | ServiceSpec | RouteSpec;

interface KeyEntry {
  readonly key: string;
  readonly kind: ObjectKind;
  readonly name: string;
  /** What etcd holds now; null once deleted. */
  raw: string | null;
  /** The version in force: its text and validated object; null when none ever applied. */
  inForce: { readonly raw: string; readonly spec: Spec } | null;
  /** A change that validated on its own and waits on the rest of the table (spec null: a delete). */
  waiting: { readonly raw: string | null; readonly spec: Spec | null } | null;
  /** Why what etcd holds is not in force, and what stays instead; null when it is in force. */
  problem: { readonly issue: ConfigIssue; readonly outcome: string } | null;
}

/** An issue with what stays in its place, as the admin state and the logs show it. */
function shown(problem: { readonly issue: ConfigIssue; readonly outcome: string }): ConfigIssue {
  return { ...problem.issue, message: `${problem.issue.message} (${problem.outcome})` };
}

/** What one update did. */
export interface KeyUpdate {
  /** Whether any routing key was touched (its objects or its problems may have changed). */
  readonly touched: boolean;
  /** Whether the objects in force changed. */
  readonly changed: boolean;
  /** Keys refused by this update, each once: logged and counted by the caller. */
  readonly rejected: readonly ConfigIssue[];
}

/**
 * The routing objects held in etcd, key by key, under one rule: the objects in
 * force only ever form a table that validates as a whole. A new value is
 * checked on its own (JSON, schema), then with the rest of the table: one that
 * names an unknown region, version or service, leaves no weight above zero, or
 * a delete that would leave references dangling or no route at all, is held
 * back. Its last valid version stays in force, the rest of the revision
 * applies, and the key is reported until etcd holds something that fits (held
 * back changes are tried again with every revision, so fixing what they wait
 * on lets them in). Keys outside regions/services/routes (such as the fleet's
 * `nodes/`) are not routing objects and are ignored.
 */
export class EtcdKeyState {
  readonly prefix: string;
  readonly #entries = new Map<string, KeyEntry>();

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** Applies the changes of one etcd revision, validating them in slices so a large revision never blocks the event loop. */
  async update(changes: readonly KeyChange[]): Promise<KeyUpdate> {
    const rejected: ConfigIssue[] = [];
    const touched = await runSliced(this.#recordAll(changes, rejected));
    const resolved = await runSliced(this.#resolve());
    return { touched, changed: resolved.changed, rejected: [...rejected, ...resolved.rejected] };
  }

  /**
   * A whole listing: keys known but absent from it are deletions. The versions
   * in force are kept, so a re-list after a compaction or a reconnect is
   * judged against them like any revision.
   */
  async replaceAll(listed: readonly KeyChange[]): Promise<KeyUpdate> {
    const present = new Set(listed.map((c) => c.key));
    const gone: KeyChange[] = [];
    for (const key of this.#entries.keys()) if (!present.has(key)) gone.push({ key, value: null });
    return this.update([...listed, ...gone]);
  }

  /** The routing document of the objects in force; unchanged objects keep their identity. */
  document(): RoutingDocument {
    return this.#document(null);
  }

  /**
   * Problems of the objects in force as a table: none but having no route at
   * all, since a change that breaks a reference never gets in (the compile
   * checks the references again before a table is swapped in).
   */
  documentIssues(): ConfigIssue[] {
    for (const entry of this.#entries.values()) if (entry.kind === 'routes' && entry.inForce !== null) return [];
    return [{ path: `${this.prefix}routes/`, message: `no route is stored under ${this.prefix}: there is no routing table here (is the prefix right?)`, reason: 'empty' }];
  }

  /** The document as written in etcd for the objects in force, as JSON text (for the last-good snapshot). */
  rawJson(): string {
    const sections: Record<ObjectKind, string[]> = { regions: [], services: [], routes: [] };
    for (const entry of this.#entries.values()) {
      if (entry.inForce !== null) sections[entry.kind].push(`${JSON.stringify(entry.name)}:${entry.inForce.raw}`);
    }
    return `{${OBJECT_KINDS.map((kind) => `${JSON.stringify(kind)}:{${sections[kind].join(',')}}`).join(',')}}`;
  }

  /** Keys whose value in etcd is not the one in force, with the reason and what stays. */
  issues(): ConfigIssue[] {
    const out: ConfigIssue[] = [];
    for (const entry of this.#entries.values()) if (entry.problem !== null) out.push(shown(entry.problem));
    return out;
  }

  /** The same keys with only the reason each is refused (for a writer about to refuse an edit). */
  refusals(): ConfigIssue[] {
    const out: ConfigIssue[] = [];
    for (const entry of this.#entries.values()) if (entry.problem !== null) out.push(entry.problem.issue);
    return out;
  }

  /** Number of routing keys known (in force, waiting or refused). */
  get size(): number {
    return this.#entries.size;
  }

  /** Whether a key holds a routing object (a region, service or route). */
  isRouting(key: string): boolean {
    return this.#locate(key) !== null;
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

  /** Records every change, one step each; collects the values that fail on their own; returns whether a routing key was touched. */
  *#recordAll(changes: readonly KeyChange[], rejected: ConfigIssue[]): Generator<void, boolean> {
    let touched = false;
    for (const change of changes) {
      touched ||= this.#locate(change.key) !== null;
      const problem = this.#record(change);
      if (problem !== null) rejected.push(problem);
      yield;
    }
    return touched;
  }

  /** Records one change; returns the key's problem when its value fails on its own. */
  #record(change: KeyChange): ConfigIssue | null {
    const where = this.#locate(change.key);
    if (where === null) return null;
    const known = this.#entries.get(change.key);
    if (known !== undefined && known.raw === change.value) return null;
    const entry: KeyEntry = known ?? { key: change.key, kind: where.kind, name: where.name, raw: null, inForce: null, waiting: null, problem: null };
    entry.raw = change.value;
    this.#entries.set(change.key, entry);
    if (change.value === null) {
      entry.problem = null;
      if (entry.inForce === null) this.#entries.delete(change.key);
      else entry.waiting = { raw: null, spec: null };
      return null;
    }
    const checked = this.#check(where.kind, where.name, change.value);
    if (!checked.ok) {
      entry.waiting = null;
      const outcome = entry.inForce === null ? 'no valid version: the object is left out' : 'the last valid version stays in force';
      entry.problem = { issue: { path: change.key, message: checked.message, reason: checked.reason }, outcome };
      return shown(entry.problem);
    }
    entry.problem = null;
    entry.waiting = entry.inForce?.raw === change.value ? null : { raw: change.value, spec: checked.spec };
    return null;
  }

  #check(kind: ObjectKind, name: string, text: string): { ok: true; spec: Spec } | { ok: false; message: string; reason: RejectReason } {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { ok: false, message: `not valid JSON: ${(err as Error).message}`, reason: 'syntax' };
    }
    const result = validateObject(kind, name, value);
    if (!result.ok) return { ok: false, message: result.issues.map((i) => `${i.path}: ${i.message}`).join('; '), reason: 'schema' };
    return { ok: true, spec: result.value };
  }

  /** The document with the waiting changes of `active` applied over the objects in force. */
  #document(active: ReadonlySet<KeyEntry> | null): RoutingDocument {
    const doc: RoutingDocument = { regions: {}, services: {}, routes: {} };
    for (const entry of this.#entries.values()) {
      const spec = active?.has(entry) === true ? (entry.waiting?.spec ?? null) : (entry.inForce?.spec ?? null);
      if (spec !== null) (doc[entry.kind] as Record<string, Spec>)[entry.name] = spec;
    }
    return doc;
  }

  /**
   * Lets in every waiting change that fits: tries them all, and while the
   * result has problems, holds back the changes that caused them and tries
   * the rest again. Each round holds back at least one change, so it ends.
   */
  *#resolve(): Generator<void, { changed: boolean; rejected: ConfigIssue[] }> {
    const active = new Set<KeyEntry>();
    const byObject = new Map<string, KeyEntry>();
    for (const entry of this.#entries.values()) {
      byObject.set(`${entry.kind}.${entry.name}`, entry);
      if (entry.waiting !== null) active.add(entry);
    }
    if (active.size === 0) return { changed: false, rejected: [] };
    const hadRoutes = [...this.#entries.values()].some((e) => e.kind === 'routes' && e.inForce !== null);
    const heldBack = new Map<KeyEntry, string>();
    while (active.size > 0) {
      const doc = this.#document(active);
      const blamed = this.#blame((yield* referenceSteps(doc)).issues, active, byObject);
      if (blamed.size === 0 && hadRoutes && Object.keys(doc.routes).length === 0) {
        for (const entry of active) if (entry.kind === 'routes' && entry.waiting?.spec === null) blamed.set(entry, 'deleting it would leave no route at all');
      }
      if (blamed.size === 0) break;
      for (const [entry, why] of blamed) {
        active.delete(entry);
        heldBack.set(entry, why);
      }
    }
    for (const entry of active) {
      const next = entry.waiting as { raw: string | null; spec: Spec | null };
      entry.waiting = null;
      entry.problem = null;
      if (next.raw === null || next.spec === null) this.#entries.delete(entry.key);
      else entry.inForce = { raw: next.raw, spec: next.spec };
    }
    const rejected: ConfigIssue[] = [];
    for (const [entry, why] of heldBack) {
      const stays = entry.waiting?.spec === null ? 'the object stays in force' : entry.inForce === null ? 'not in force yet' : 'the last valid version stays in force';
      const problem = { issue: { path: entry.key, message: why, reason: 'reference' as const }, outcome: `held back: ${stays}` };
      if (entry.problem?.issue.message !== why) rejected.push(shown(problem));
      entry.problem = problem;
    }
    return { changed: active.size > 0, rejected };
  }

  /** Which active changes caused these problems, with why. Problems that only follow from another's are left for a later round. */
  #blame(issues: readonly ReferenceIssue[], active: ReadonlySet<KeyEntry>, byObject: ReadonlyMap<string, KeyEntry>): Map<KeyEntry, string> {
    const blamed = new Map<KeyEntry, string>();
    const blame = (entry: KeyEntry, why: string): void => {
      if (!blamed.has(entry)) blamed.set(entry, why);
    };
    const activeOf = (object: string | undefined): KeyEntry | null => {
      const entry = object === undefined ? undefined : byObject.get(object);
      return entry !== undefined && active.has(entry) ? entry : null;
    };
    const own = (issue: ReferenceIssue): string => {
      const base = `${issue.object}.`;
      return issue.path.startsWith(base) ? `${issue.path.slice(base.length)}: ${issue.message}` : issue.message;
    };
    const deferred: ReferenceIssue[] = [];
    for (const issue of issues) {
      if (issue.dependsOn !== undefined) {
        deferred.push(issue);
        continue;
      }
      const removed = activeOf(issue.missing);
      const object = activeOf(issue.object);
      const claimant = activeOf(issue.conflictsWith);
      if (removed !== null && removed.waiting?.spec === null) blame(removed, `deleting it would break ${issue.path}: ${issue.message}`);
      else if (object !== null) blame(object, own(issue));
      else if (claimant !== null) blame(claimant, `it would break ${issue.path}: ${issue.message}`);
    }
    if (blamed.size === 0) {
      for (const issue of deferred) {
        const object = activeOf(issue.object);
        if (object !== null) blame(object, own(issue));
      }
    }
    return blamed;
  }
}
