import type { TableSource } from '../routing/table.js';
import type { ApplyResult, TableApplier } from './applier.js';
import type { ProviderUpdate } from './provider.js';

/**
 * Stands between a provider and the applier. Versions are taken one at a
 * time; of several waiting, only the newest is read (a burst of saves is
 * parsed once); a version whose digest equals the last one read is dropped
 * before it is parsed or validated, and answers with that version's outcome.
 */
export class TableWatcher {
  readonly #applier: TableApplier;
  readonly #source: TableSource;
  #queue: Promise<unknown> = Promise.resolve();
  #latest = 0;
  #last: { digest: string; outcome: ApplyResult } | null = null;

  constructor(applier: TableApplier, source: TableSource) {
    this.#applier = applier;
    this.#source = source;
  }

  /** Takes one version; resolves with what became of it (never rejects: the applier turns failures into refusals). */
  offer(update: ProviderUpdate): Promise<ApplyResult> {
    const ticket = ++this.#latest;
    const run = this.#queue.then(() => (ticket === this.#latest ? this.#handle(update) : ({ result: 'superseded' } as const)));
    this.#queue = run;
    return run;
  }

  /** Forgets the last digest: the next version is read even when it repeats (after the table in force was replaced behind the watcher's back). */
  forget(): void {
    this.#last = null;
  }

  async #handle(update: ProviderUpdate): Promise<ApplyResult> {
    const last = this.#last;
    if (last !== null && last.digest === update.digest) return last.outcome.result === 'rejected' ? last.outcome : { result: 'unchanged' };
    let outcome: ApplyResult;
    try {
      const read = await update.read();
      outcome = read.ok
        ? await this.#applier.apply({ source: this.#source, doc: read.doc, rawJson: read.rawJson, revision: read.revision, heldBack: read.heldBack })
        : await this.#applier.reject(this.#source, read.issues);
    } catch (err) {
      outcome = await this.#applier.reject(this.#source, [{ path: '', message: `the routing table could not be read: ${(err as Error).message}`, reason: 'unreadable' }]);
    }
    if (outcome.result !== 'superseded') this.#last = { digest: update.digest, outcome };
    return outcome;
  }
}
