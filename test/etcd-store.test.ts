import t, { type Test } from 'tap';
import { getJson, send } from './helpers/client.js';
import { etcdFixture, startEtcd, type EtcdFixture } from './helpers/etcd.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { runCli } from './helpers/process.js';
import { waitFor } from './helpers/poll.js';


const PREFIX = '/meridian/';

interface State {
  store: { kind: string; connection: string; revision: number; fleet: Record<string, { node: string; endpoints: Record<string, { up: boolean; reason: string }> }> };
  revision: number;
  source: string;
  stale: boolean;
  errors: { key: string; message: string }[];
}

async function setup(t: Test): Promise<EtcdFixture> {
  const fixture = await etcdFixture(t, 'eu');
  const { client, up } = fixture;
  await client.put(`${PREFIX}regions/eu-west`).value(JSON.stringify({ location: { lat: 53.35, lon: -6.26 } }));
  await client.put(`${PREFIX}services/web`).value(JSON.stringify({ healthCheck: { interval: '200ms', timeout: '150ms' }, versions: { stable: { endpoints: { 'eu-west': [up.address] } } } }));
  await client.put(`${PREFIX}routes/web`).value(JSON.stringify({ hosts: ['web.test'], service: 'web' }));
  return fixture;
}

async function meridianOnEtcd(t: Test, etcd: { url: string }, dir?: string, startupTimeout = '5s'): Promise<TestMeridian> {
  const m = await startTestMeridian({}, { store: { file: undefined, etcd: { endpoints: [etcd.url], prefix: PREFIX, startupTimeout } } }, dir === undefined ? {} : { dir });
  t.teardown(() => m.close());
  return m;
}

const web = { headers: { host: 'web.test' } };

t.test('etcd: list, live puts, a two-key transaction, an invalid value, a delete, an etcd restart', async (t) => {
  const { etcd, client, up } = await setup(t);
  const m = await meridianOnEtcd(t, etcd);
  let state = await getJson<State>(m.adminPort, '/api/v1/state');
  t.match(state, { source: 'etcd', stale: false, errors: [], store: { kind: 'etcd', connection: 'connected' } });
  t.ok(state.revision >= 4, `the revision in force is etcd's (${state.revision})`);
  t.equal((await send(m.port, web)).status, 200);

  // Two keys in one transaction take effect together.
  const txn = await client
    .if(`${PREFIX}routes/web`, 'Version', '>', 0)
    .then(
      client.put(`${PREFIX}routes/api`).value(JSON.stringify({ hosts: ['api.test'], service: 'api' })),
      client.put(`${PREFIX}services/api`).value(JSON.stringify({ versions: { stable: { endpoints: { 'eu-west': [up.address] } } } })),
    )
    .commit();
  const txnRevision = Number(txn.header.revision);
  await waitFor(() => m.meridian.applier.current?.revision === txnRevision, 'the transaction to apply');
  t.ok(m.meridian.applier.current?.routes.has('api') && m.meridian.applier.current.services.has('api'), 'both keys are in the table');
  t.equal((await send(m.port, { headers: { host: 'api.test' } })).status, 200);

  // An invalid value is rejected on its own; the last valid version stays.
  await client.put(`${PREFIX}services/web`).value('{ not json');
  await waitFor(async () => (await getJson<State>(m.adminPort, '/api/v1/state')).errors.length > 0, 'the rejection to show');
  state = await getJson<State>(m.adminPort, '/api/v1/state');
  t.equal(state.errors[0]?.key, `${PREFIX}services/web`);
  t.match(state.errors[0]?.message, /not valid JSON.*last valid version stays in force/);
  t.equal((await send(m.port, web)).status, 200, 'the service still serves on its last valid version');
  await client.put(`${PREFIX}services/web`).value(JSON.stringify({ versions: { stable: { endpoints: { 'eu-west': [up.address] } } }, steering: 'sideways' }));
  await waitFor(async () => /steering/.test((await getJson<State>(m.adminPort, '/api/v1/state')).errors[0]?.message ?? ''), 'the schema error to show');

  // A delete removes the object.
  await client.delete().key(`${PREFIX}routes/api`);
  await waitFor(() => m.meridian.applier.current?.routes.has('api') === false, 'the deleted route to go');
  t.equal((await send(m.port, { headers: { host: 'api.test' } })).status, 404);

  // etcd away: traffic goes on; back: changes apply again.
  await etcd.kill();
  for (let i = 0; i < 10; i++) t.equal((await send(m.port, web)).status, 200, 'served while etcd is down');
  await waitFor(async () => (await getJson<State>(m.adminPort, '/api/v1/state')).store.connection === 'disconnected', 'the state to show etcd away');
  t.match((await send(m.adminPort, { path: '/metrics' })).text, /meridian_etcd_connected 0/);
  await etcd.restart();
  await client.put(`${PREFIX}routes/late`).value(JSON.stringify({ hosts: ['late.test'], service: 'web' }));
  await waitFor(() => m.meridian.applier.current?.routes.has('late') === true, 'a change after the restart to apply', 15_000);
  t.equal((await send(m.port, { headers: { host: 'late.test' } })).status, 200);
  t.equal((await getJson<State>(m.adminPort, '/api/v1/state')).store.connection, 'connected');
});

t.test('etcd down at boot: the last-good snapshot serves (stale) until etcd answers', async (t) => {
  const { etcd, client } = await setup(t);
  const first = await meridianOnEtcd(t, etcd);
  await first.meridian.applier.flush();
  const dir = first.dir;
  await first.close();
  await etcd.kill();

  const m = await meridianOnEtcd(t, etcd, dir, '300ms');
  const state = await getJson<State>(m.adminPort, '/api/v1/state');
  t.match(state, { source: 'snapshot', stale: true });
  t.equal((await send(m.adminPort, { path: '/readyz' })).status, 200, 'ready on the snapshot');
  t.equal((await send(m.port, web)).status, 200, 'serving from the snapshot');

  await etcd.restart();
  await waitFor(() => m.meridian.applier.current?.source === 'etcd', 'etcd to take over', 15_000);
  t.equal(m.meridian.applier.stale, false);
  await client.put(`${PREFIX}routes/more`).value(JSON.stringify({ hosts: ['more.test'], service: 'web' }));
  await waitFor(() => m.meridian.applier.current?.routes.has('more') === true, 'changes after etcd returned to apply', 15_000);
});

t.test('etcd down at boot with no snapshot: a clear error', async (t) => {
  const etcd = await startEtcd();
  await etcd.destroy();
  await t.rejects(
    startTestMeridian({}, { store: { file: undefined, etcd: { endpoints: [etcd.url], startupTimeout: '200ms' } } }),
    /did not answer within 200 ms and there is no last-good snapshot/,
  );
});

t.test('cut off from etcd while keys change and etcd compacts: traffic goes on, and the changes apply once reconnected', async (t) => {
  const { etcd, client } = await setup(t);
  const proxy = await startTcpProxy(Number(new URL(etcd.url).port));
  t.teardown(() => proxy.close());
  const m = await meridianOnEtcd(t, proxy);
  t.equal((await send(m.port, web)).status, 200);
  proxy.cut();
  await waitFor(async () => (await getJson<State>(m.adminPort, '/api/v1/state')).store.connection === 'disconnected', 'the cut to be seen', 10_000);
  await client.put(`${PREFIX}routes/a`).value(JSON.stringify({ hosts: ['a.test'], service: 'web' }));
  const putB = await client.put(`${PREFIX}routes/b`).value(JSON.stringify({ hosts: ['b.test'], service: 'web' }));
  await client.delete().key(`${PREFIX}routes/web`);
  const latest = Number((await client.get(`${PREFIX}routes/b`).exec()).header.revision);
  await client.kv.compact({ revision: String(latest), physical: true });
  for (let i = 0; i < 5; i++) t.equal((await send(m.port, web)).status, 200, 'the table in force serves while cut off');
  proxy.restore();
  await waitFor(() => m.meridian.applier.current?.routes.has('b') === true, 'the changes made while cut off to apply', 20_000);
  const routes = m.meridian.applier.current?.routes;
  t.ok(routes?.has('a') && routes.has('b'), 'both routes put during the cut are in force');
  t.notOk(routes?.has('web'), 'the route deleted during the cut is gone');
  // A listing cannot see when a key was deleted: the revision in force is that of the last routing put it lists.
  t.ok((m.meridian.applier.current?.revision ?? 0) >= Number(putB.header.revision), 'the revision in force is at least that of the last put made while cut off');
});

t.test('fleet: each node publishes its health view under a lease; status lists the live nodes', async (t) => {
  const { etcd, client, up } = await setup(t);
  const m = await meridianOnEtcd(t, etcd);
  await waitFor(async () => (await client.get(`${PREFIX}nodes/test-node`).string()) !== null, 'the node to publish its view');
  await waitFor(async () => {
    const view = JSON.parse((await client.get(`${PREFIX}nodes/test-node`).string()) ?? '{}') as { endpoints?: Record<string, { state: string }> };
    return Object.values(view.endpoints ?? {}).some((ep) => ep.state === 'healthy');
  }, 'the view to show the first health check');
  await waitFor(async () => (await getJson<State>(m.adminPort, '/api/v1/state')).store.fleet['test-node'] !== undefined, 'the admin state to show the fleet');

  up.healthStatus = 503;
  await waitFor(async () => {
    const view = JSON.parse((await client.get(`${PREFIX}nodes/test-node`).string()) ?? '{}') as { endpoints?: Record<string, { up: boolean }> };
    return Object.values(view.endpoints ?? {}).some((ep) => !ep.up);
  }, 'a health flip to be published', 20_000);
  const published = JSON.parse((await client.get(`${PREFIX}nodes/test-node`).string()) ?? '{}') as { endpoints: Record<string, { address?: string }> };
  t.same(Object.values(published.endpoints).map((ep) => ep.address), [up.address], 'each endpoint of the view names its address');
  const status = await runCli(['status', '--etcd', etcd.url, '--etcd-prefix', PREFIX, '-o', 'table']);
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, /1 node alive/);
  t.match(status.stdout, /^test-node\s.*\s0\/1 up\s/m);
  t.match(status.stdout, new RegExp(`^test-node\\s+web\\s+\\S+\\s+\\S+\\s+${up.address.replace(/\./g, '\\.')}\\s+status-503\\s`, 'm'), 'the down endpoint by service, version, region and address');
  const json = JSON.parse((await runCli(['status', '--etcd', etcd.url, '--etcd-prefix', PREFIX])).stdout) as { down: Array<{ uses: Array<{ service: string }> }> };
  t.equal(json.down[0]?.uses[0]?.service, 'web', 'piped: JSON, with the join');

  await m.close();
  t.equal(await client.get(`${PREFIX}nodes/test-node`).string(), null, 'a node that stops takes its key with it');
  t.match((await runCli(['status', '--etcd', etcd.url, '--etcd-prefix', PREFIX, '-o', 'table'])).stdout, /0 nodes alive/);
});
