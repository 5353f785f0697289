import { resolve } from 'node:path';
import { ConfigError } from '../config/issues.js';
import type { RoutingParser } from '../config/routing-parser.js';
import type { Logger } from '../observability/logger.js';
import type { ApplyResult, TableApplier } from './applier.js';
import { FileStore, type FileSnapshot } from './file.js';
import { serveLastGood, type LastGood } from './last-good.js';
import type { RoutingSource } from './source.js';

function applyFile(applier: TableApplier, snapshot: FileSnapshot): Promise<ApplyResult> {
  if (!snapshot.ok) return applier.reject('file', snapshot.issues);
  const rawJson = snapshot.rawJson;
  return applier.apply({ source: 'file', doc: snapshot.doc, rawJson: () => rawJson });
}

/**
 * The routes file as the routing source: the first table from the file, else
 * the last-good snapshot; boot fails (listing every problem) when neither can
 * serve. Then the file is watched; each change is one transaction.
 */
export async function startFileSource(file: string, applier: TableApplier, parser: RoutingParser, lastGood: LastGood, logger: Logger): Promise<RoutingSource> {
  const store = new FileStore(file, logger, parser);
  const first = await applyFile(applier, await store.read());
  if (first.result === 'rejected') {
    const why = await serveLastGood(lastGood, applier, first.issues, logger);
    if (why !== null) {
      await store.close();
      logger.warn({ reason: why }, 'no last-good snapshot to serve');
      throw new ConfigError(first.issues);
    }
  }
  return {
    watch: () => store.watch(async (snapshot) => void (await applyFile(applier, snapshot))),
    reload: async () => (await applyFile(applier, await store.read())).result,
    state: () => ({ kind: 'file', path: resolve(file) }),
    close: () => store.close(),
  };
}
