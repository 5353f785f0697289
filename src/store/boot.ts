import { ConfigError, type ConfigIssue } from '../config/issues.js';
import type { Logger } from '../observability/logger.js';
import type { ApplyResult, TableApplier } from './applier.js';
import { serveLastGood, type LastGood } from './last-good.js';
import type { ProviderUpdate, RoutingProvider } from './provider.js';
import type { TableWatcher } from './watcher.js';

/** Resolves with the promise's value, or null once `ms` have passed first (never, for null). */
async function within<T>(ms: number | null, promise: Promise<T>): Promise<T | null> {
  if (ms === null) return promise;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The one way a node gets its first table: start the provider and take its
 * first version; when it is refused (a provider that says so) or does not come
 * in time, serve the last-good snapshot of the same source (stale), showing
 * why. Boot fails, listing every problem, when neither can serve. Versions
 * arriving meanwhile wait until this is decided, so a snapshot never replaces
 * a newer table from the source. Then every version goes through the watcher.
 */
export async function bootRouting(provider: RoutingProvider, watcher: TableWatcher, applier: TableApplier, lastGood: LastGood, logger: Logger): Promise<void> {
  let decided!: () => void;
  const gate = new Promise<void>((resolve) => (decided = resolve));
  let takeFirst: ((update: ProviderUpdate) => void) | null = null;
  const first = new Promise<ProviderUpdate>((resolve) => (takeFirst = resolve));
  let firstOutcome: Promise<ApplyResult> | null = null;
  provider.start(async (update) => {
    if (takeFirst !== null) {
      takeFirst(update);
      takeFirst = null;
      await gate;
      return firstOutcome ?? watcher.offer(update);
    }
    await gate;
    return watcher.offer(update);
  });
  try {
    const update = await within(provider.boot.answerWithinMs, first);
    takeFirst = null;
    if (update === null) {
      await fallBack(provider, watcher, applier, lastGood, logger, [{ path: `store.${provider.kind}`, message: provider.boot.silence, reason: 'unreadable' }], provider.boot.silence);
      return;
    }
    firstOutcome = watcher.offer(update);
    const outcome = await firstOutcome;
    if (outcome.result !== 'rejected' || applier.current !== null) return;
    if (provider.boot.whenRefused === 'serve-last-good') await fallBack(provider, watcher, applier, lastGood, logger, outcome.issues, null);
    else logger.warn({ reason: applier.notReadyReason() }, `not ready: waiting for a routing table in ${provider.kind}`);
  } catch (err) {
    await provider.close();
    throw err;
  } finally {
    decided();
  }
}

/** Serves the last-good snapshot in place of the source, or throws why boot cannot go on. */
async function fallBack(provider: RoutingProvider, watcher: TableWatcher, applier: TableApplier, lastGood: LastGood, logger: Logger, why: readonly ConfigIssue[], silence: string | null): Promise<void> {
  const unusable = await serveLastGood(lastGood, applier, why, logger);
  if (unusable === null) {
    // The snapshot replaced the table behind the watcher: the source's next version is read even if it repeats.
    watcher.forget();
    return;
  }
  logger.warn({ reason: unusable }, 'no last-good snapshot to serve');
  throw new ConfigError(silence === null ? why : [{ path: `store.${provider.kind}`, message: `${silence} and ${unusable}` }]);
}
