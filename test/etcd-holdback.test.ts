import { access, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import t, { type Test } from 'tap';
import { getJson, send } from './helpers/client.js';
import { etcdFixture, type TestEtcd } from './helpers/etcd.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { runCli } from './helpers/process.js';
import type { TestUpstream } from './helpers/upstream.js';

const PREFIX = '/meridian/';

interface State {
  ready: boolean;
  revision: number;
  source: string | null;
  stale: boolean;
  errors: { key: string; message: string }[];
  store: { connection: string };
}

const EU = { location: { lat: 53.35, lon: -6.26 } };

function service(up: TestUpstream, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    healthCheck: { interval: '200ms', timeout: '150ms' },
    split: { weights: { stable: 90, canary: 10 } },
    versions: { stable: { endpoints: { 'eu-west': [up.address] } }, canary: { endpoints: { 'eu-west': [up.address] } } },
    ...extra,
  };
}

async function put(client: Etcd3, key: string, value: unknown): Promise<number> {
  const res = await client.put(`${PREFIX}${key}`).value(JSON.stringify(value)).exec();
  return Number(res.header.revision);
}

async function seed(client: Etcd3, up: TestUpstream): Promise<void> {
  await put(client, 'regions/eu-west', EU);
  await put(client, 'services/web', service(up));
  await put(client, 'routes/web', { hosts: ['web.test'], service: 'web' });
}

async function meridianOnEtcd(t: Test, etcd: TestEtcd, prefix = PREFIX, onLog?: (line: Record<string, unknown>) => void): Promise<TestMeridian> {
  const m = await startTestMeridian({}, { store: { file: undefined, etcd: { endpoints: [etcd.url], prefix, startupTimeout: '5s' } } }, onLog === undefined ? {} : { onLog });
  t.teardown(() => m.close());
  return m;
}

const web = { headers: { host: 'web.test' } };

async function state(m: TestMeridian): Promise<State> {
  return getJson<State>(m.adminPort, '/api/v1/state');
}

/** Waits until etcd's revision `revision` has been judged by the node and handed to the applier, then reads the state. */
async function judged(m: TestMeridian, revision: number): Promise<State> {
  await waitFor(async () => (await getJson<{ store: { revision: number } }>(m.adminPort, '/api/v1/state')).store.revision >= revision, `revision ${revision} to be judged`);
  await m.meridian.applier.flush();
  return state(m);
}

t.test('etcd: a change the table cannot take is held back, the rest of the revision applies, traffic never sees a 404', async (t) => {
  const { etcd, client, up } = await etcdFixture(t, 'eu');
  await seed(client, up);
  const m = await meridianOnEtcd(t, etcd);
  const first = await state(m);
  t.equal(first.ready, true);
  t.equal((await send(m.port, web)).status, 200);

  // Traffic flows through every bad edit below; each response must be a 200.
  let stop = false;
  const statuses: number[] = [];
  const traffic = (async () => {
    while (!stop) statuses.push((await send(m.port, web)).status);
  })();
  t.teardown(() => {
    stop = true;
  });
  /** Lets a few more requests through after an edit, so every state between edits is served. */
  const flowing = async (): Promise<void> => {
    const mark = statuses.length;
    await waitFor(() => statuses.length >= mark + 5, 'requests to flow');
  };

  // All weights zero (what `meridian weights web stable=0 canary=0` used to write).
  let rev = await put(client, 'services/web', service(up, { split: { weights: { stable: 0, canary: 0 } } }));
  let s = await judged(m, rev);
  t.same(
    s.errors.map((e) => `${e.key}: ${e.message}`),
    [`${PREFIX}services/web: split.weights: at least one weight must be above 0 (held back: the last valid version stays in force)`],
    'the key is listed with the reason and what stays',
  );
  t.equal(m.meridian.applier.current?.services.get('web')?.versions.get('stable')?.weight, 90, 'the last valid weights stay in force');
  await flowing();

  // A region typo in the same revision as a valid new route: the route applies, the service is held back.
  const txn = await client
    .if(`${PREFIX}routes/web`, 'Version', '>', 0)
    .then(
      client.put(`${PREFIX}services/web`).value(JSON.stringify({ versions: { stable: { endpoints: { 'eu-wset': [up.address] } } } })),
      client.put(`${PREFIX}routes/other`).value(JSON.stringify({ hosts: ['other.test'], service: 'web' })),
    )
    .commit();
  rev = Number(txn.header.revision);
  s = await judged(m, rev);
  t.match(s.errors, [{ key: `${PREFIX}services/web`, message: /versions\.stable\.endpoints\.eu-wset: unknown region "eu-wset" \(held back/ }]);
  t.ok(m.meridian.applier.current?.routes.has('other'), 'the valid key of the same revision applies');
  t.equal((await send(m.port, { headers: { host: 'other.test' } })).status, 200);
  await flowing();

  // Deleting a region still referenced, and every route: both held back.
  await client.delete().key(`${PREFIX}regions/eu-west`);
  await client.delete().key(`${PREFIX}routes/other`);
  const del = await client.delete().key(`${PREFIX}routes/web`);
  s = await judged(m, Number(del.header.revision));
  const byKey = new Map(s.errors.map((e) => [e.key, e.message]));
  t.match(byKey.get(`${PREFIX}regions/eu-west`), /^deleting it would break services\.web\.versions\.\w+\.endpoints\.eu-west: unknown region "eu-west" \(held back: the object stays in force\)$/);
  t.match(byKey.get(`${PREFIX}routes/web`), /deleting it would leave no route at all \(held back: the object stays in force\)/);
  t.notOk(byKey.has(`${PREFIX}routes/other`), 'one of the two routes could go');
  t.ok(m.meridian.applier.current?.regions.has('eu-west'), 'the referenced region stays');
  t.equal((await send(m.port, web)).status, 200);
  await flowing();

  const metrics = (await send(m.adminPort, { path: '/metrics' })).text;
  t.match(metrics, /meridian_config_rejected_total\{source="etcd",reason="reference"\} [4-9]/, 'every held-back change is counted by reason');
  t.match(metrics, /meridian_etcd_keys_rejected 3/);

  // Fixing what they wait on lets them in: put the region back and a valid service.
  await put(client, 'regions/eu-west', EU);
  rev = await put(client, 'services/web', service(up, { split: { weights: { stable: 50, canary: 50 } } }));
  s = await judged(m, rev);
  t.same(s.errors.map((e) => e.key), [`${PREFIX}routes/web`], 'only the held-back delete of the last route is still listed');
  t.equal(m.meridian.applier.current?.services.get('web')?.versions.get('canary')?.weight, 50);
  await flowing();
  rev = await put(client, 'routes/web', { hosts: ['web.test'], service: 'web' });
  s = await judged(m, rev);
  t.same(s.errors, [], 'etcd and the table in force agree again');

  stop = true;
  await traffic;
  t.ok(statuses.length >= 20, `traffic flowed throughout (${statuses.length} requests)`);
  t.same([...new Set(statuses)], [200], 'every request during the bad edits got 200');
});

t.test('etcd: a held-back key waiting on another is let in by the revision that fixes it', async (t) => {
  const { etcd, client, up } = await etcdFixture(t, 'eu');
  await seed(client, up);
  const m = await meridianOnEtcd(t, etcd);
  let rev = await put(client, 'services/api', { versions: { stable: { endpoints: { 'us-east': [up.address] } } } });
  let s = await judged(m, rev);
  t.match(s.errors, [{ key: `${PREFIX}services/api`, message: /unknown region "us-east" \(held back: not in force yet\)/ }]);
  rev = await put(client, 'routes/api', { hosts: ['api.test'], service: 'api' });
  s = await judged(m, rev);
  t.match(s.errors.find((e) => e.key === `${PREFIX}routes/api`)?.message, /service: unknown service "api" \(held back: not in force yet\)/, 'a route to the held-back service waits too');
  t.equal((await send(m.port, { headers: { host: 'api.test' } })).status, 404, 'nothing serves api.test yet');
  rev = await put(client, 'regions/us-east', { location: { lat: 38.9, lon: -77.04 } });
  s = await judged(m, rev);
  t.same(s.errors, [], 'the region they waited on lets both in');
  t.equal((await send(m.port, { headers: { host: 'api.test' } })).status, 200);
});

t.test('etcd: a prefix with no routing table keeps the node not ready and the snapshot untouched until keys appear', async (t) => {
  const { etcd, client, up } = await etcdFixture(t, 'eu');
  await seed(client, up);
  const m = await meridianOnEtcd(t, etcd, '/typo/');
  const s = await state(m);
  t.equal(s.ready, false);
  const readyz = await send(m.adminPort, { path: '/readyz' });
  t.equal(readyz.status, 503, 'not ready on an empty prefix');
  t.match(s.errors, [{ key: '/typo/routes/', message: /no route is stored under \/typo\// }]);
  t.equal((await send(m.port, web)).status, 503, 'requests get 503 no-routing-table, not 404');
  await m.meridian.applier.flush();
  await t.rejects(access(join(m.dir, 'last-good.json')), 'no snapshot is written');

  await client.put('/typo/regions/eu-west').value(JSON.stringify(EU));
  await client.put('/typo/services/web').value(JSON.stringify(service(up)));
  await client.put('/typo/routes/web').value(JSON.stringify({ hosts: ['web.test'], service: 'web' }));
  await waitFor(async () => (await send(m.adminPort, { path: '/readyz' })).status === 200, 'ready once a table is stored');
  t.equal((await send(m.port, web)).status, 200);
  await m.meridian.applier.flush();
  await access(join(m.dir, 'last-good.json'));
  t.pass('the snapshot is written once a table applied');
});

t.test('etcd: the table is stale while etcd is unreachable, and trouble is logged once per change of state', async (t) => {
  const { etcd, client, up } = await etcdFixture(t, 'eu');
  await seed(client, up);
  const warnings: string[] = [];
  const infos: string[] = [];
  const m = await meridianOnEtcd(t, etcd, PREFIX, (line) => {
    if (['warn', 'error', 'fatal'].includes(String(line.level)) && !String(line.msg).startsWith('endpoint')) warnings.push(String(line.msg));
    if (line.level === 'info') infos.push(String(line.msg));
  });
  t.equal((await state(m)).stale, false);
  await etcd.kill();
  const down = await waitFor(async () => {
    const s = await state(m);
    return s.stale ? s : null;
  }, 'the table to be marked stale', 10_000);
  t.equal(down.store.connection, 'disconnected');
  t.equal((await send(m.port, web)).status, 200, 'the stale table serves');
  up.healthStatus = 503; // health flips make the node try to publish its fleet view while etcd is away
  await new Promise((resolve) => setTimeout(resolve, 5_000)); // several retry periods of the store and the fleet publisher
  t.ok(warnings.length <= 3, `etcd trouble logged once per state change, not per retry: ${JSON.stringify(warnings)}`);
  t.equal(warnings.filter((w) => w.startsWith('etcd unreachable')).length, 1, 'one line when etcd went away');
  up.healthStatus = 200;
  await etcd.restart();
  await waitFor(async () => !(await state(m)).stale, 'fresh again once etcd is back', 30_000);
  const back = await waitFor(() => infos.filter((w) => w.startsWith('etcd reachable again after')), 'the line saying etcd is back');
  t.equal(back.length, 1, `one line when it came back: ${back.join('; ')}`);
  t.equal(warnings.filter((w) => w.startsWith('etcd unreachable')).length, 1, 'and no second down line');
});

t.test('CLI: edits a router would refuse are refused, writing nothing', async (t) => {
  const { etcd, client, up } = await etcdFixture(t, 'eu');
  await seed(client, up);
  const e = ['--etcd', etcd.url];

  const zero = await runCli(['weights', 'web', 'stable=0', 'canary=0', ...e]);
  t.equal(zero.code, 1, 'all weights zero is refused');
  t.match(zero.stderr, /\/meridian\/services\/web: split\.weights: at least one weight must be above 0 \(refused: nothing was written\)/);

  const region = await runCli(['drain', 'region', 'eu-west', ...e]);
  t.equal(region.code, 0, 'a valid edit goes through');
  t.equal((await runCli(['undrain', 'region', 'eu-west', ...e])).code, 0);

  const dir = await mkdtemp(join(tmpdir(), 'meridian-holdback-'));
  const file = join(dir, 'typo.json');
  await writeFile(file, JSON.stringify({ services: { web: { versions: { stable: { endpoints: { 'eu-wset': [up.address] } } } } } }));
  const typo = await runCli(['apply', '-f', file, ...e]);
  t.equal(typo.code, 1, 'a region typo is refused');
  t.match(typo.stderr, /unknown region "eu-wset"/);

  const prune = join(dir, 'prune.json');
  await writeFile(prune, JSON.stringify({ services: { web: service(up) }, routes: { web: { hosts: ['web.test'], service: 'web' } } }));
  const pruned = await runCli(['apply', '-f', prune, '--prune', ...e]);
  t.equal(pruned.code, 1, 'pruning a region still referenced is refused');
  t.match(pruned.stderr, /\/meridian\/regions\/eu-west: deleting it would break/);

  const after = await client.getAll().prefix(PREFIX).strings();
  t.same(JSON.parse(after[`${PREFIX}services/web`] ?? '{}'), service(up), 'the service is as it was');
  t.ok(after[`${PREFIX}regions/eu-west`] !== undefined, 'the region is still there');
});
