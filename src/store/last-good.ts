import { formatIssue, type ConfigIssue } from '../config/issues.js';
import { validateRoutingDocument } from '../config/routing-document.js';
import type { Logger } from '../observability/logger.js';
import type { TableApplier } from './applier.js';
import { readSnapshot } from './snapshot.js';

/** Where the last-good snapshot lives and whose it is. */
export interface LastGood {
  readonly path: string;
  /** The source identity a snapshot must carry to stand in for it (`file:/abs/path`, `etcd:/prefix/`). */
  readonly origin: string;
}

/**
 * The one fallback policy: when the source cannot give a first table, serve
 * the last table that applied cleanly from the same source (stale), showing
 * why the source was refused. Returns null when it served, else why it could not.
 */
export async function serveLastGood(lastGood: LastGood, applier: TableApplier, why: readonly ConfigIssue[], logger: Logger): Promise<string | null> {
  let snapshot;
  try {
    snapshot = await readSnapshot(lastGood.path);
  } catch (err) {
    return `the last-good snapshot ${lastGood.path} is unreadable: ${(err as Error).message}`;
  }
  if (snapshot === null) return `there is no last-good snapshot in ${lastGood.path}`;
  if (snapshot.origin !== lastGood.origin) return `the last-good snapshot in ${lastGood.path} belongs to ${snapshot.origin}, not ${lastGood.origin}`;
  const { doc, issues } = validateRoutingDocument(snapshot.document);
  if (issues.length > 0) return `the last-good snapshot in ${lastGood.path} does not validate: ${issues.map(formatIssue).join('; ')}`;
  const document = snapshot.document;
  const applied = await applier.apply({ source: 'snapshot', doc, rawJson: () => JSON.stringify(document), revision: snapshot.revision, stale: true, heldBack: why });
  if (applied.result === 'rejected') return `the last-good snapshot in ${lastGood.path} could not be applied`;
  logger.warn({ path: lastGood.path, revision: snapshot.revision, savedAt: snapshot.savedAt, because: why.map(formatIssue) }, 'serving the last-good snapshot');
  return null;
}
