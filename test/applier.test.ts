import t from 'tap';
import { validateRoutingDocument } from '../src/config/routing-document.js';
import type { RoutingDocument } from '../src/config/routing-schema.js';
import { UNKNOWN_ORIGIN } from '../src/geo/origin.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { servingRuntime } from '../src/proxy/runtime.js';
import { UpstreamRegistry } from '../src/proxy/upstream.js';
import { TableApplier } from '../src/store/applier.js';
import { simpleRoutes } from './helpers/meridian.js';
import { testHealthRegistry } from './helpers/table.js';

function applier(): { applier: TableApplier; metrics: Metrics } {
  const metrics = new Metrics({ defaultMetrics: false });
  return { applier: new TableApplier({ runtime: servingRuntime(new UpstreamRegistry(), testHealthRegistry()), metrics, logger: createLogger('silent'), node: UNKNOWN_ORIGIN, snapshotPath: null, origin: 'test' }), metrics };
}

function doc(address: string): RoutingDocument {
  const checked = validateRoutingDocument(simpleRoutes({ 'eu-west': [address] }));
  if (checked.issues.length > 0) throw new Error('the test document must be valid');
  return checked.doc;
}

t.test('updates are handled one at a time; of several waiting only the newest is built', async (t) => {
  const { applier: a } = applier();
  const results = await Promise.all([
    a.apply({ source: 'file', doc: doc('127.0.0.1:1001'), rawJson: () => '{}' }),
    a.apply({ source: 'file', doc: doc('127.0.0.1:1002'), rawJson: () => '{}' }),
    a.apply({ source: 'file', doc: doc('127.0.0.1:1003'), rawJson: () => '{}' }),
  ]);
  t.same(results.map((r) => r.result), ['superseded', 'superseded', 'applied']);
  t.equal(a.current?.services.get('web')?.versions.get('stable')?.groups[0]?.all[0]?.key, '127.0.0.1:1003', 'the newest document is in force');
  t.equal(a.current?.revision, 1, 'superseded documents take no revision');
  const newest = doc('127.0.0.1:1004');
  t.equal((await a.apply({ source: 'file', doc: newest, rawJson: () => '{}' })).result, 'applied');
  t.equal((await a.apply({ source: 'file', doc: { ...newest }, rawJson: () => '{}' })).result, 'unchanged', 'the same objects again change nothing');
  t.equal(a.current?.revision, 2);
});

t.test('a document that fails while being built is refused; the table in force stays and the promise never rejects', async (t) => {
  const { applier: a, metrics } = applier();
  const good = doc('127.0.0.1:1001');
  t.equal((await a.apply({ source: 'etcd', doc: good, rawJson: () => '{}', revision: 7 })).result, 'applied');
  const broken = { regions: good.regions, services: { web: {} }, routes: good.routes } as unknown as RoutingDocument;
  const result = await a.apply({ source: 'etcd', doc: broken, rawJson: () => '{}', revision: 8 });
  t.equal(result.result, 'rejected');
  t.match(a.issues[0]?.message, /^internal error while building the table: /);
  t.equal(a.current?.revision, 7, 'the table in force stays');
  t.match(await metrics.registry.metrics(), /meridian_config_rejected_total\{source="etcd",reason="schema"\} 1/);
  t.equal((await a.apply({ source: 'etcd', doc: doc('127.0.0.1:1002'), rawJson: () => '{}', revision: 9 })).result, 'applied', 'and the next good one applies');
  t.same(a.issues, [], 'the refusal is cleared by a clean apply');
});

t.test('not ready says why', async (t) => {
  const { applier: a } = applier();
  t.equal(a.notReadyReason(), 'no routing table in force');
  await a.reject('etcd', [{ path: '/p/routes/', message: 'no route is stored under /p/', reason: 'empty' }]);
  t.equal(a.notReadyReason(), 'no routing table in force: /p/routes/: no route is stored under /p/');
  await a.apply({ source: 'etcd', doc: doc('127.0.0.1:1'), rawJson: () => '{}', revision: 3 });
  t.equal(a.notReadyReason(), null);
});
