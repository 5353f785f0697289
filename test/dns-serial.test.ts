import { Etcd3 } from 'etcd3';
import t from 'tap';
import { dig } from './helpers/dig.js';
import { startEtcd } from './helpers/etcd.js';
import { startTestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream } from './helpers/upstream.js';

const DNS = { dns: { listen: '127.0.0.1:0', ttl: '30s', zones: [{ name: 'example.com', nameservers: ['ns1.example.com'] }] } };
const REGION = { location: { lat: 53.35, lon: -6.26 }, edge: { ipv4: ['203.0.113.10'] } };

async function serial(port: number): Promise<number> {
  const soa = await dig(port, ['example.com', 'SOA']);
  return Number(soa.answers[0]?.data.split(' ')[2]);
}

t.test('file mode: the SOA serial survives restarts and rises with every change', async (t) => {
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const doc = (hosts: string[]) => ({
    regions: { 'eu-west': REGION },
    services: { web: { versions: { stable: { endpoints: { 'eu-west': [up.address] } } } } },
    routes: { www: { hosts, service: 'web' } },
  });
  const first = await startTestMeridian(doc(['www.example.com']), DNS);
  const dir = first.dir;
  t.equal(await serial(first.dnsPort as number), 1, 'a first start without a snapshot: 1');
  await first.writeRoutes(doc(['www.example.com', 'api.example.com']));
  await waitFor(async () => (await serial(first.dnsPort as number)) === 2, 'a change to raise the serial to 2');
  await first.close();

  const same = await startTestMeridian(doc(['www.example.com', 'api.example.com']), DNS, { dir });
  t.equal(await serial(same.dnsPort as number), 2, 'restarted on the same file: still 2 (it was 1 before: a per-process counter)');
  await same.close();

  const changed = await startTestMeridian(doc(['www.example.com']), DNS, { dir });
  t.teardown(() => changed.close());
  t.equal(await serial(changed.dnsPort as number), 3, 'restarted on a changed file: 3, above the stored 2');
  await changed.writeRoutes(doc(['api.example.com']));
  await waitFor(async () => (await serial(changed.dnsPort as number)) === 4, 'the next change: 4');
});

t.test('etcd mode: two nodes on the same table answer the same serial, the etcd revision', async (t) => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.url });
  const up = await startUpstream('up');
  t.teardown(async () => {
    client.close();
    await up.kill();
    await etcd.destroy();
  });
  const prefix = '/meridian/';
  await client.put(`${prefix}regions/eu-west`).value(JSON.stringify(REGION));
  await client.put(`${prefix}services/web`).value(JSON.stringify({ versions: { stable: { endpoints: { 'eu-west': [up.address] } } } }));
  await client.put(`${prefix}routes/www`).value(JSON.stringify({ hosts: ['www.example.com'], service: 'web' }));
  const store = { file: undefined, etcd: { endpoints: [etcd.url], prefix } };
  const a = await startTestMeridian({}, { ...DNS, node: { name: 'node-a' }, store });
  t.teardown(() => a.close());
  const b = await startTestMeridian({}, { ...DNS, node: { name: 'node-b' }, store });
  t.teardown(() => b.close());
  await waitFor(async () => (await serial(a.dnsPort as number)) > 0 && (await serial(b.dnsPort as number)) > 0, 'both nodes to serve a table');
  t.equal(await serial(a.dnsPort as number), await serial(b.dnsPort as number), 'the same serial on both nodes');
  const put = await client.put(`${prefix}routes/www`).value(JSON.stringify({ hosts: ['www.example.com', 'api.example.com'], service: 'web' }));
  const revision = Number(put.header.revision);
  await waitFor(async () => (await serial(a.dnsPort as number)) === revision && (await serial(b.dnsPort as number)) === revision, `both nodes to answer serial ${revision}`);
  t.pass(`after a change both answer the etcd revision of the change, ${revision}`);

  // A delete is the last routing change: a listing after a restart cannot see its revision, node A's snapshot can.
  await client.put(`${prefix}routes/old`).value(JSON.stringify({ hosts: ['old.example.com'], service: 'web' }));
  const deleted = Number((await client.delete().key(`${prefix}routes/old`)).header.revision);
  await waitFor(async () => (await serial(a.dnsPort as number)) === deleted, `node A to answer the delete's revision ${deleted}`);
  await a.meridian.close();
  const again = await startTestMeridian({}, { ...DNS, node: { name: 'node-a' }, store }, { dir: a.dir });
  t.teardown(() => again.close());
  await waitFor(async () => (await serial(again.dnsPort as number)) > 0, 'node A to serve again');
  t.equal(await serial(again.dnsPort as number), deleted, `restarted after a delete: still ${deleted}, never back to the last put's revision`);
  t.equal(await serial(b.dnsPort as number), deleted, 'the same as node B, which watched the delete');
});
