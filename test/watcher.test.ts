import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError } from '../src/config/issues.js';
import { validateRoutingDocument } from '../src/config/routing-document.js';
import type { RoutingDocument } from '../src/config/routing-schema.js';
import { UNKNOWN_ORIGIN } from '../src/geo/origin.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { servingRuntime } from '../src/proxy/runtime.js';
import { UpstreamRegistry } from '../src/proxy/upstream.js';
import { TableApplier, type ApplyResult } from '../src/store/applier.js';
import { bootRouting } from '../src/store/boot.js';
import type { ProviderBoot, ProviderDocument, ProviderUpdate, RoutingProvider } from '../src/store/provider.js';
import { writeSnapshot } from '../src/store/snapshot.js';
import { TableWatcher } from '../src/store/watcher.js';
import { simpleRoutes } from './helpers/meridian.js';
import { testHealthRegistry } from './helpers/table.js';

const logger = createLogger('silent');

function newApplier(): TableApplier {
  return new TableApplier({ runtime: servingRuntime(new UpstreamRegistry(), testHealthRegistry()), metrics: new Metrics({ defaultMetrics: false }), logger, node: UNKNOWN_ORIGIN, snapshotPath: null, origin: 'test' });
}

function docFor(address: string): RoutingDocument {
  const checked = validateRoutingDocument(simpleRoutes({ 'eu-west': [address] }));
  if (checked.issues.length > 0) throw new Error('the test document must be valid');
  return checked.doc;
}

/** The endpoint the table in force sends `web` to. */
function endpointOf(applier: TableApplier): string | undefined {
  return applier.current?.services.get('web')?.versions.get('stable')?.groups[0]?.all[0]?.key;
}

/** A version of the table that counts how often it was read. */
function version(digest: string, document: ProviderDocument, reads: string[]): ProviderUpdate {
  return {
    digest,
    read: () => {
      reads.push(digest);
      return Promise.resolve(document);
    },
  };
}

function good(address: string): ProviderDocument {
  const doc = docFor(address);
  return { ok: true, doc, rawJson: () => JSON.stringify(simpleRoutes({ 'eu-west': [address] })) };
}

const bad: ProviderDocument = { ok: false, issues: [{ path: 'routes.web.service', message: 'no such service', reason: 'reference' }] };

t.test('the watcher drops a repeated digest before reading it, reads only the newest of a burst, and a repeated refusal stays refused', async (t) => {
  const applier = newApplier();
  const watcher = new TableWatcher(applier, 'file');
  const reads: string[] = [];
  t.equal((await watcher.offer(version('a', good('127.0.0.1:1001'), reads))).result, 'applied');
  t.equal((await watcher.offer(version('a', good('127.0.0.1:1001'), reads))).result, 'unchanged', 'the same digest again');
  t.same(reads, ['a'], 'a repeat is not read (parsed or validated) again');

  const newest = good('127.0.0.1:1004');
  const burst = await Promise.all(['b', 'c', 'd'].map((d, i) => watcher.offer(version(d, i === 2 ? newest : good(`127.0.0.1:${1002 + i}`), reads))));
  t.same(burst.map((r) => r.result), ['superseded', 'superseded', 'applied'], 'of a burst only the newest is built');
  t.same(reads, ['a', 'd'], 'and only the newest is read');
  t.equal(endpointOf(applier), '127.0.0.1:1004');

  const refused = await watcher.offer(version('e', bad, reads));
  t.equal(refused.result, 'rejected');
  const again = await watcher.offer(version('e', bad, reads));
  t.equal(again.result, 'rejected', 'the same refused document answers refused again');
  t.same(reads, ['a', 'd', 'e'], 'without being read again');
  t.equal(applier.issues.length, 1, 'its problem is still shown');
  t.equal((await watcher.offer(version('d', newest, reads))).result, 'unchanged', 'back to the table in force');
  t.same(applier.issues, [], 'which clears the problem');

  const failing: ProviderUpdate = { digest: 'f', read: () => Promise.reject(new Error('disk on fire')) };
  const failed = await watcher.offer(failing);
  t.equal(failed.result, 'rejected', 'a version that cannot be read is one more refusal');
  t.match(applier.issues[0]?.message, /could not be read: disk on fire/);
  t.equal(endpointOf(applier), '127.0.0.1:1004', 'the table in force stays');
});

/** A provider driven by the test: `emit` sends a version as the source would. */
function scriptedProvider(boot: ProviderBoot): RoutingProvider & { emit(update: ProviderUpdate): Promise<ApplyResult>; closed: boolean } {
  let to: ((update: ProviderUpdate) => Promise<ApplyResult>) | null = null;
  return {
    kind: 'etcd',
    boot,
    closed: false,
    start(emit) {
      to = emit;
    },
    emit(update) {
      if (to === null) throw new Error('not started');
      return to(update);
    },
    reload: () => Promise.resolve('unchanged'),
    state: () => ({}),
    close() {
      this.closed = true;
      return Promise.resolve();
    },
  };
}

t.test('boot: a silent source falls back to the snapshot, and a version arriving meanwhile is applied after it, never under it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-boot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'last-good.json');
  await writeSnapshot(path, { source: 'etcd', origin: 'etcd:/m/', revision: 4, documentJson: JSON.stringify(simpleRoutes({ 'eu-west': ['127.0.0.1:2001'] })) });
  const applier = newApplier();
  const provider = scriptedProvider({ answerWithinMs: 50, whenRefused: 'wait', silence: 'etcd did not answer within 50 ms' });
  const reads: string[] = [];
  const booted = bootRouting(provider, new TableWatcher(applier, 'etcd'), applier, { path, origin: 'etcd:/m/' }, logger);
  await new Promise((resolve) => setTimeout(resolve, 80));
  // The source answers late, while the snapshot is being served.
  const late = provider.emit(version('late', good('127.0.0.1:2002'), reads));
  await booted;
  t.equal((await late).result, 'applied', 'the late version applies');
  t.equal(endpointOf(applier), '127.0.0.1:2002', 'after the snapshot, so the source wins');
  t.equal(applier.stale, false);
});

t.test('boot: a refused first version waits (etcd) or falls back (file); with no snapshot a file boot fails and closes its provider', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-boot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = { path: join(dir, 'none.json'), origin: 'etcd:/m/' };

  const waiting = newApplier();
  const etcd = scriptedProvider({ answerWithinMs: 1_000, whenRefused: 'wait', silence: '' });
  const booted = bootRouting(etcd, new TableWatcher(waiting, 'etcd'), waiting, missing, logger);
  t.equal((await etcd.emit(version('empty', bad, []))).result, 'rejected');
  await booted;
  t.equal(waiting.current, null, 'etcd with no table yet: up, not ready');
  t.match(waiting.notReadyReason(), /no such service/);
  t.equal((await etcd.emit(version('filled', good('127.0.0.1:3001'), []))).result, 'applied', 'and the first table in etcd serves');

  const failing = newApplier();
  const file = scriptedProvider({ answerWithinMs: null, whenRefused: 'serve-last-good', silence: '' });
  const failed = bootRouting(file, new TableWatcher(failing, 'file'), failing, missing, logger);
  void file.emit(version('broken', bad, []));
  const err = await failed.then(() => null, (e: unknown) => e);
  t.ok(err instanceof ConfigError, 'boot fails with a ConfigError');
  t.match((err as ConfigError).message, /no such service/, 'listing the problem');
  t.equal(file.closed, true, 'and the provider is closed');
});
