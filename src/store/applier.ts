import { compileTableSliced, tableEndpoints, unverifiedEndpoints, type CompileContext, type TableRuntime } from '../routing/compile.js';
import { formatIssue, reasonOf, type ConfigIssue } from '../config/issues.js';
import type { RoutingDocument } from '../config/routing-schema.js';
import type { Origin } from '../geo/origin.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RoutingTable, TableSource } from '../routing/table.js';
import { ApplyHistory } from './history.js';
import { readSnapshot, writeSnapshot, type SnapshotFile } from './snapshot.js';

/** A whole routing document as a store delivers it, already validated as one. */
export interface StoreSnapshot {
  readonly source: TableSource;
  /** Validated objects without problems; an object unchanged since the last snapshot keeps its identity. */
  readonly doc: RoutingDocument;
  /** The document as written, as JSON (text or UTF-8 bytes): what the last-good snapshot keeps. Called only when one is saved. */
  rawJson(): string | Uint8Array;
  /** Revision given by the source (etcd, snapshot file); file sources count applies instead. */
  readonly revision?: number;
  /** True when serving from a copy that may be behind the source of truth. */
  readonly stale?: boolean;
  /** Changes the store held back on its own (etcd keys): listed with the table's state, the rest applies. */
  readonly heldBack?: readonly ConfigIssue[];
}

/** The outcome of one apply. */
export type ApplyResult =
  | { readonly result: 'applied'; readonly table: RoutingTable }
  | { readonly result: 'unchanged' }
  /** A newer snapshot arrived while this one waited: only the newest is built. */
  | { readonly result: 'superseded' }
  | { readonly result: 'rejected'; readonly issues: readonly ConfigIssue[] };

/** Collaborators of the applier. */
export interface ApplierOptions {
  /** Where compiled tables get their pools and health records, and give them back. */
  readonly runtime: TableRuntime;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly node: Origin;
  /** Where the last-good snapshot is written; null to keep none. */
  readonly snapshotPath: string | null;
  /** Identity of the source, recorded in the snapshot (`file:/abs/path`, `etcd:/prefix/`). */
  readonly origin: string;
  /** Processes serving traffic for the node: per-node limits are divided among them (routing/compile.ts). Default 1. */
  readonly processes?: number;
  /** Called after each swap with the table and the snapshot it was built from (a primary hands it to its workers). */
  readonly onSwap?: (table: RoutingTable, snapshot: StoreSnapshot) => void;
}

type Update = { readonly kind: 'apply'; readonly snapshot: StoreSnapshot } | { readonly kind: 'reject'; readonly source: TableSource; readonly issues: readonly ConfigIssue[] };

/** Whether two documents hold the very same objects (by identity) under the same names. */
function sameObjects(a: RoutingDocument, b: RoutingDocument): boolean {
  for (const kind of ['regions', 'services', 'routes'] as const) {
    const x = a[kind] as Record<string, unknown>;
    const y = b[kind] as Record<string, unknown>;
    const names = Object.keys(x);
    if (names.length !== Object.keys(y).length) return false;
    for (const name of names) if (x[name] !== y[name]) return false;
  }
  return true;
}

/**
 * The one swap point. The table in force only ever moves to a table that
 * validates as a whole: each snapshot is compiled beside the table in force
 * (spread over the event loop, reusing what did not change) and swapped in
 * with one assignment; a refused change leaves the table in force untouched,
 * its problems in `issues`, the admin state, the logs and the metrics.
 * Snapshots are handled one at a time; of several waiting, only the newest is built.
 */
export class TableApplier {
  #current: RoutingTable | null = null;
  #issues: readonly ConfigIssue[] = [];
  #stale = false;
  #appliedAt: Date | null = null;
  readonly #options: ApplierOptions;
  #document: RoutingDocument | null = null;
  /** The revision of the last file table applied; null until the first (then seeded from the last-good snapshot). */
  #fileRevision: number | null = null;
  /** Whether an etcd table has been applied since the start (the first is checked against the last-good snapshot). */
  #etcdSeen = false;
  #snapshotWrite: Promise<void> = Promise.resolve();
  #queue: Promise<unknown> = Promise.resolve();
  #latest = 0;
  /** The last applies and refusals, for the admin state. */
  readonly history = new ApplyHistory();

  constructor(options: ApplierOptions) {
    this.#options = options;
  }

  /** The routing table in force, or null before the first apply. */
  get current(): RoutingTable | null {
    return this.#current;
  }

  /** Problems to show: why the latest change was refused, or the changes the store held back. */
  get issues(): readonly ConfigIssue[] {
    return this.#issues;
  }

  /** Whether the table in force may be behind its source (a snapshot, or the source is unreachable). */
  get stale(): boolean {
    return this.#stale;
  }

  /** When the table in force was swapped in. */
  get appliedAt(): Date | null {
    return this.#appliedAt;
  }

  /** Compiles and (when it builds cleanly) swaps in a validated snapshot. */
  apply(snapshot: StoreSnapshot): Promise<ApplyResult> {
    return this.#enqueue({ kind: 'apply', snapshot });
  }

  /** Records a change that was refused before it became a document (unreadable, malformed, invalid). */
  reject(source: TableSource, issues: readonly ConfigIssue[]): Promise<ApplyResult> {
    return this.#enqueue({ kind: 'reject', source, issues });
  }

  /**
   * Marks the table in force as possibly behind its source (the source is
   * unreachable) or current again. A table served from the snapshot stays stale
   * until the source itself replaces it.
   */
  markStale(stale: boolean): void {
    if (this.#current?.source !== 'snapshot') this.#stale = stale;
  }

  /** Why the node cannot serve yet, or null once a table is in force. */
  notReadyReason(): string | null {
    if (this.#current !== null) return null;
    const first = this.#issues[0];
    return first === undefined ? 'no routing table in force' : `no routing table in force: ${formatIssue(first)}`;
  }

  /** Resolves once the updates queued so far are handled and the latest snapshot write has finished. */
  async flush(): Promise<void> {
    await this.#queue;
    await this.#snapshotWrite;
  }

  /** Queues an update; the promise never rejects: a failure while building is one more refusal, and the table in force stays. */
  #enqueue(update: Update): Promise<ApplyResult> {
    const ticket = ++this.#latest;
    const source = update.kind === 'reject' ? update.source : update.snapshot.source;
    const run = this.#queue
      .then(() => (ticket === this.#latest || update.kind === 'reject' ? this.#handle(update) : ({ result: 'superseded' } as const)))
      .catch((err: Error) => {
        this.#options.logger.error({ err: err.message, stack: err.stack }, 'building the routing table failed');
        return this.#refuse(source, [{ path: '', message: `internal error while building the table: ${err.message}` }]);
      });
    this.#queue = run;
    return run;
  }

  async #handle(update: Update): Promise<ApplyResult> {
    if (update.kind === 'reject') return this.#refuse(update.source, update.issues);
    const { snapshot } = update;
    const { metrics, logger } = this.#options;
    const stale = snapshot.stale ?? false;
    const heldBack = snapshot.heldBack ?? [];
    if (this.#current !== null && this.#current.source === snapshot.source && this.#stale === stale && this.#document !== null && sameObjects(snapshot.doc, this.#document)) {
      this.#showHeldBack(snapshot.source, heldBack);
      metrics.configReloads.inc({ source: snapshot.source, result: 'unchanged' });
      return { result: 'unchanged' };
    }
    const revision = snapshot.revision === undefined ? await this.#nextFileRevision(snapshot) : await this.#etcdRevision(snapshot.revision, snapshot);
    const context: CompileContext = { revision, source: snapshot.source, node: this.#options.node, bindings: this.#options.runtime, processes: this.#options.processes ?? 1 };
    const compiled = await compileTableSliced(snapshot.doc, context, this.#current);
    if (compiled.issues.length > 0) {
      // The store validated the document as a whole, so this is a disagreement between checks: keep serving, say so.
      if (this.#current !== null) this.#retain(this.#current);
      return this.#refuse(snapshot.source, [...heldBack, ...compiled.issues]);
    }
    this.#swap(compiled.table, snapshot.doc, stale);
    this.history.applied(snapshot.source, revision);
    this.#options.onSwap?.(compiled.table, snapshot);
    if (snapshot.revision === undefined) this.#fileRevision = revision;
    this.#showHeldBack(snapshot.source, heldBack);
    metrics.configReloads.inc({ source: snapshot.source, result: 'applied' });
    const table = compiled.table;
    logger.info({ source: snapshot.source, revision, stale, routes: table.routes.size, services: table.services.size, regions: table.regions.size }, 'routing table applied');
    const unverified = unverifiedEndpoints(table);
    if (unverified.length > 0) logger.warn({ revision, endpoints: unverified.slice(0, 20), count: unverified.length }, 'upstream TLS without verification (tls.verify: false): these endpoints accept any certificate');
    if (snapshot.source !== 'snapshot' && this.#options.snapshotPath !== null) this.#saveSnapshot(snapshot.source, revision, snapshot);
    return { result: 'applied', table };
  }

  #refuse(source: TableSource, issues: readonly ConfigIssue[]): ApplyResult {
    const { metrics, logger } = this.#options;
    this.#show(issues);
    this.history.rejected(source, this.#current?.revision ?? 0, issues);
    metrics.configReloads.inc({ source, result: 'rejected' });
    for (const reason of new Set(issues.map(reasonOf))) metrics.configRejected.inc({ source, reason });
    logger.warn({ source, errors: issues.map(formatIssue) }, 'routing table change rejected; the table in force stays');
    return { result: 'rejected', issues };
  }

  /** Shows what the store held back; keys held back anew are refusals of their own in the history. */
  #showHeldBack(source: TableSource, heldBack: readonly ConfigIssue[]): void {
    const shown = new Set(this.#issues.map(formatIssue));
    const fresh = heldBack.filter((i) => !shown.has(formatIssue(i)));
    if (fresh.length > 0) this.history.rejected(source, this.#current?.revision ?? 0, fresh);
    this.#show(heldBack);
  }

  #show(issues: readonly ConfigIssue[]): void {
    this.#issues = issues;
    this.#options.metrics.configObjectsRejected.set(issues.length);
  }

  /** Keeps pools and health checks of exactly this table's endpoints. */
  #retain(table: RoutingTable): void {
    this.#options.runtime.retain(tableEndpoints(table));
  }

  #swap(table: RoutingTable, doc: RoutingDocument, stale: boolean): void {
    this.#current = table;
    this.#document = doc;
    this.#stale = stale;
    this.#appliedAt = new Date();
    this.#retain(table);
    this.#options.metrics.retainRoutes(new Set(table.routes.keys()));
    this.#options.metrics.configRevision.set(table.revision);
  }

  /**
   * A file table's revision: one past the previous one. The first after a
   * start continues from the last-good snapshot (the same revision when it holds
   * this very document), so revisions, and the GeoDNS SOA serial that follows
   * them, never go backwards across restarts.
   */
  async #nextFileRevision(snapshot: StoreSnapshot): Promise<number> {
    if (this.#fileRevision !== null) return this.#fileRevision + 1;
    const stored = await this.#stored(snapshot);
    if (stored === null) return 1;
    return stored.same ? stored.revision : stored.revision + 1;
  }

  /**
   * An etcd table's revision: the revision of the last routing change as the
   * listing or the watch saw it. A listing cannot see a delete, so after a
   * restart the first table may list lower than the revision this node had
   * already served for the same document: it keeps that one, never going back.
   */
  async #etcdRevision(listed: number, snapshot: StoreSnapshot): Promise<number> {
    if (this.#etcdSeen) return listed;
    this.#etcdSeen = true;
    const stored = await this.#stored(snapshot);
    return stored !== null && stored.same && stored.revision > listed ? stored.revision : listed;
  }

  /** The last-good snapshot's revision and whether it holds this very document from this origin; null without a readable one. */
  async #stored(snapshot: StoreSnapshot): Promise<{ revision: number; same: boolean } | null> {
    const path = this.#options.snapshotPath;
    if (path === null) return null;
    let stored: SnapshotFile | null;
    try {
      stored = await readSnapshot(path);
    } catch (err) {
      this.#options.logger.warn({ err: (err as Error).message, path }, 'last-good snapshot unreadable; revisions are not continued from it');
      return null;
    }
    if (stored === null) return null;
    const raw = snapshot.rawJson();
    const same = stored.origin === this.#options.origin && JSON.stringify(stored.document) === JSON.stringify(JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8')));
    return { revision: stored.revision, same };
  }

  #saveSnapshot(source: 'file' | 'etcd', revision: number, snapshot: StoreSnapshot): void {
    const path = this.#options.snapshotPath as string;
    this.#snapshotWrite = this.#snapshotWrite
      .then(() => writeSnapshot(path, { source, origin: this.#options.origin, revision, documentJson: snapshot.rawJson() }))
      .catch((err: Error) => this.#options.logger.warn({ err: err.message, path }, 'cannot write last-good snapshot'));
  }
}
