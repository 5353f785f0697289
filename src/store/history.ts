import type { ConfigIssue } from '../config/issues.js';
import type { TableSource } from '../routing/table.js';

/** How many applies and refusals the history keeps. */
export const HISTORY_LIMIT = 20;
/** How many problems of one refusal the history keeps (the full list is in `errors` while it stands). */
const ERRORS_PER_ENTRY = 10;

/** One routing-table change as the admin state lists it. */
export interface HistoryEntry {
  readonly at: string;
  readonly result: 'applied' | 'rejected';
  readonly source: TableSource;
  /** The revision swapped in; for a refusal, the revision that stayed in force (0: none yet). */
  readonly revision: number;
  /** Why a refusal happened (as in the state's `errors`), at most ten; empty for an apply. */
  readonly errors: readonly { readonly key: string; readonly message: string }[];
  /** Problems of the refusal beyond the ones listed. */
  readonly moreErrors: number;
}

/**
 * The last routing-table applies and refusals, newest first, bounded: what an
 * operator looking at a node wants to see besides the problems standing now.
 */
export class ApplyHistory {
  #entries: HistoryEntry[] = [];

  /** Records a table swapped in. */
  applied(source: TableSource, revision: number): void {
    this.#add({ at: new Date().toISOString(), result: 'applied', source, revision, errors: [], moreErrors: 0 });
  }

  /** Records a change refused (the table of `revision` stays in force). */
  rejected(source: TableSource, revision: number, issues: readonly ConfigIssue[]): void {
    const errors = issues.slice(0, ERRORS_PER_ENTRY).map((i) => ({ key: i.path, message: i.message }));
    this.#add({ at: new Date().toISOString(), result: 'rejected', source, revision, errors, moreErrors: issues.length - errors.length });
  }

  /** Newest first. */
  entries(): readonly HistoryEntry[] {
    return this.#entries;
  }

  #add(entry: HistoryEntry): void {
    this.#entries = [entry, ...this.#entries.slice(0, HISTORY_LIMIT - 1)];
  }
}
