import { isDeepStrictEqual } from 'node:util';
import { compileTable, tableEndpoints, type CompileContext } from '../config/compile.js';
import type { ConfigIssue } from '../config/issues.js';
import { validateRoutingObjects } from '../config/routing-validate.js';
import type { RoutingDocument } from '../config/routing-schema.js';
import type { Origin } from '../geo/origin.js';
import type { HealthRegistry } from '../health/registry.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { UpstreamRegistry } from '../proxy/upstream.js';
import type { RoutingTable, TableSource } from '../routing/table.js';
import { writeSnapshot } from './snapshot.js';

/** A whole routing document as a store delivers it. */
export interface StoreSnapshot {
  readonly source: TableSource;
  readonly document: unknown;
  /** Revision given by the source (etcd, snapshot file); file sources count applies instead. */
  readonly revision?: number;
  /** True when serving from a copy that may be behind the source of truth. */
  readonly stale?: boolean;
  /** Problems the store found itself (etcd keys rejected on their own), shown with the table's. */
  readonly keyIssues?: readonly ConfigIssue[];
}

/** The outcome of one apply. */
export type ApplyResult =
  | { readonly result: 'applied'; readonly table: RoutingTable; readonly issues: readonly ConfigIssue[] }
  | { readonly result: 'unchanged' }
  | { readonly result: 'rejected'; readonly issues: readonly ConfigIssue[] };

/** Collaborators of the applier. */
export interface ApplierOptions {
  readonly upstreams: UpstreamRegistry;
  readonly health: HealthRegistry;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly node: Origin;
  /** Where the last-good snapshot is written; null to keep none. */
  readonly snapshotPath: string | null;
  /** Identity of the source, recorded in the snapshot (`file:/abs/path`, `etcd:/prefix/`). */
  readonly origin: string;
  /** Reject the whole document when any object has a problem (file store), instead of disabling that object. */
  readonly rejectOnIssues: boolean;
}

/**
 * The one swap point. Validates and compiles each snapshot into a new
 * RoutingTable beside the one in force, then swaps it in with one assignment.
 * A rejected snapshot leaves the table in force untouched and its problems in
 * `issues`, the admin state and the logs.
 */
export class TableApplier {
  /** The routing table in force, or null before the first apply. */
  current: RoutingTable | null = null;
  /** Problems of the latest snapshot (rejected, or disabled objects). */
  issues: readonly ConfigIssue[] = [];
  stale = false;
  appliedAt: Date | null = null;
  readonly #options: ApplierOptions;
  #document: RoutingDocument | null = null;
  #fileRevision = 0;
  #snapshotWrite: Promise<void> = Promise.resolve();

  constructor(options: ApplierOptions) {
    this.#options = options;
  }

  /** Validates, compiles and (when clean enough) swaps in a snapshot. */
  apply(snapshot: StoreSnapshot): ApplyResult {
    const { metrics, logger } = this.#options;
    const { doc, issues, rejected } = validateRoutingObjects(snapshot.document);
    const stale = snapshot.stale ?? false;
    const keyIssues = snapshot.keyIssues ?? [];
    if (this.current !== null && this.current.source === snapshot.source && this.stale === stale && isDeepStrictEqual(doc, this.#document) && issues.length === 0) {
      this.issues = keyIssues;
      metrics.configObjectsRejected.set(keyIssues.length);
      metrics.configReloads.inc({ source: snapshot.source, result: 'unchanged' });
      return { result: 'unchanged' };
    }
    const revision = snapshot.revision ?? this.#fileRevision + 1;
    const context: CompileContext = { revision, source: snapshot.source, node: this.#options.node, bindings: this.#bindings(), rejected };
    const compiled = compileTable(doc, context);
    const all = [...keyIssues, ...issues, ...compiled.issues];
    if (all.length > 0 && this.#options.rejectOnIssues) {
      this.issues = all;
      metrics.configReloads.inc({ source: snapshot.source, result: 'rejected' });
      metrics.configObjectsRejected.set(all.length);
      logger.error({ source: snapshot.source, errors: all.map((i) => `${i.path}: ${i.message}`) }, 'routing table rejected; the table in force stays');
      return { result: 'rejected', issues: all };
    }
    this.#swap(compiled.table, doc, stale);
    if (snapshot.revision === undefined) this.#fileRevision = revision;
    this.issues = all;
    metrics.configReloads.inc({ source: snapshot.source, result: 'applied' });
    metrics.configObjectsRejected.set(all.length);
    logger.info(
      { source: snapshot.source, revision, stale, routes: compiled.table.routes.size, services: compiled.table.services.size, regions: compiled.table.regions.size },
      'routing table applied',
    );
    if (snapshot.source !== 'snapshot' && this.#options.snapshotPath !== null) this.#saveSnapshot(snapshot.source, revision, snapshot.document);
    return { result: 'applied', table: compiled.table, issues: all };
  }

  /** Records problems of a snapshot that could not even be read or parsed. */
  reject(source: TableSource, issues: readonly ConfigIssue[]): void {
    this.issues = issues;
    this.#options.metrics.configReloads.inc({ source, result: 'rejected' });
    this.#options.metrics.configObjectsRejected.set(issues.length);
    this.#options.logger.error({ source, errors: issues.map((i) => `${i.path}: ${i.message}`) }, 'routing table rejected; the table in force stays');
  }

  /** Resolves once the latest snapshot write has finished. */
  async flush(): Promise<void> {
    await this.#snapshotWrite;
  }

  #bindings(): CompileContext['bindings'] {
    const { upstreams, health } = this.#options;
    return {
      upstream: (address, connectTimeoutMs) => upstreams.acquire(address, connectTimeoutMs),
      health: (address, check, slowStartMs) => health.acquire(address, check, slowStartMs),
    };
  }

  #swap(table: RoutingTable, doc: RoutingDocument, stale: boolean): void {
    this.current = table;
    this.#document = doc;
    this.stale = stale;
    this.appliedAt = new Date();
    const endpoints = tableEndpoints(table);
    this.#options.upstreams.retain(endpoints.map((ep) => ep.upstream));
    this.#options.health.retain(endpoints.map((ep) => ep.health));
    this.#options.metrics.retainRoutes(new Set(table.routes.keys()));
    this.#options.metrics.configRevision.set(table.revision);
  }

  #saveSnapshot(source: 'file' | 'etcd', revision: number, document: unknown): void {
    const path = this.#options.snapshotPath as string;
    this.#snapshotWrite = this.#snapshotWrite
      .then(() => writeSnapshot(path, { source, origin: this.#options.origin, revision, document }))
      .catch((err: Error) => this.#options.logger.warn({ err: err.message, path }, 'cannot write last-good snapshot'));
  }
}
