import { Etcd3 } from 'etcd3';
import t from 'tap';
import { startEtcd } from './helpers/etcd.js';
import { startTestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { runCli } from './helpers/process.js';
import { startTraffic } from './helpers/traffic.js';
import { startUpstream } from './helpers/upstream.js';

const PREFIX = '/meridian/';

t.test('under load: a blue-green flip and a two-key transaction apply whole, with no error', async (t) => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.url });
  const blue = await startUpstream('blue');
  const green = await startUpstream('green');
  t.teardown(async () => {
    client.close();
    await blue.kill();
    await green.kill();
    await etcd.destroy();
  });
  const service = (weights: Record<string, number>): string =>
    JSON.stringify({ split: { weights }, versions: { blue: { endpoints: { local: [blue.address] } }, green: { endpoints: { local: [green.address] } } } });
  await client.put(`${PREFIX}regions/local`).value(JSON.stringify({ location: { lat: 51.5, lon: -0.1 } }));
  await client.put(`${PREFIX}services/web`).value(service({ blue: 100, green: 0 }));
  await client.put(`${PREFIX}routes/web`).value(JSON.stringify({ hosts: ['web.test'], service: 'web' }));
  const m = await startTestMeridian({}, { proxy: { debugHeaders: true }, store: { file: undefined, etcd: { endpoints: [etcd.url], prefix: PREFIX } } });
  t.teardown(() => m.close());

  const traffic = startTraffic(m.port, { workers: 6, headers: { host: 'web.test' } });
  t.teardown(() => traffic.stop());
  await waitFor(() => traffic.samples.length > 100, 'steady traffic');

  const flip = await runCli(['weights', 'web', 'blue=0', 'green=100', '--etcd', etcd.url]);
  t.equal(flip.code, 0, flip.stderr);
  await waitFor(() => traffic.samples.some((s) => s.version === 'green'), 'the first green answer');
  const firstGreen = Math.min(...traffic.samples.filter((s) => s.version === 'green').map((s) => s.at));
  await waitFor(() => traffic.samples.filter((s) => s.sentAt > firstGreen).length > 100, 'traffic after the flip');

  // Move the route to a service created in the same transaction: applied by halves,
  // the route would name a missing service and answer 404 for a moment.
  const before = traffic.samples.length;
  await client
    .if(`${PREFIX}routes/web`, 'Version', '>', 0)
    .then(
      client.put(`${PREFIX}services/web2`).value(JSON.stringify({ versions: { only: { endpoints: { local: [green.address] } } } })),
      client.put(`${PREFIX}routes/web`).value(JSON.stringify({ hosts: ['web.test'], service: 'web2' })),
    )
    .commit();
  await waitFor(() => traffic.samples.slice(before).some((s) => s.version === 'only'), 'the moved route to serve');
  const moved = Math.min(...traffic.samples.filter((s) => s.version === 'only').map((s) => s.at));
  await waitFor(() => traffic.samples.filter((s) => s.sentAt > moved).length > 100, 'traffic after the transaction');
  const samples = await traffic.stop();

  t.same(traffic.failures(), [], `no error in ${samples.length} requests`);
  const lateBlue = samples.filter((s) => s.sentAt > firstGreen && s.version === 'blue');
  t.same(lateBlue, [], 'after the first green answer, no request sent later reached blue');
  const lateOld = samples.filter((s) => s.sentAt > moved && s.version !== 'only');
  t.same(lateOld, [], 'after the transaction showed, no request sent later used the old route');
});
