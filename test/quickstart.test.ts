import t from 'tap';
import { getJson, send } from './helpers/client.js';
import { dig } from './helpers/dig.js';
import { spawnMeridian } from './helpers/process.js';

t.test('the quick start: bundled config with demo regions answers at once', async (t) => {
  const proc = await spawnMeridian(['demo', '--config', 'config/meridian.yaml', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--dns-listen', '127.0.0.1:0']);
  t.teardown(() => proc.stop('SIGKILL'));
  const home = await send(proc.proxyPort, { path: '/' });
  t.equal(home.status, 200);
  const body = JSON.parse(home.text) as { region: string; version: string };
  t.equal(body.region, 'eu-west', 'a local client is steered to the node region');
  t.equal(home.headers['x-meridian-region'], 'eu-west');
  const fromSingapore = JSON.parse((await send(proc.proxyPort, { path: '/', headers: { 'x-forwarded-for': '10.3.0.9', 'x-meridian-version': 'stable' } })).text) as { region: string };
  t.equal(fromSingapore.region, 'ap-south', 'the tour: a client in 10.3.0.0/16 (Singapore) reaches ap-south');
  const api = JSON.parse((await send(proc.proxyPort, { path: '/', headers: { host: 'api.example.com' } })).text) as { region: string };
  t.equal(api.region, 'us-east', 'the api service fails over in its explicit order');
  const state = await getJson<{ source: string; regions: Record<string, unknown>; services: Record<string, unknown>; dns: { listen: { port: number } } }>(proc.adminPort, '/api/v1/state');
  t.same(Object.keys(state.regions).sort(), ['ap-south', 'eu-west', 'us-east']);
  const answer = await dig(state.dns.listen.port, ['www.example.com', '+subnet=10.2.0.0/24']);
  t.same(answer.answers.map((a) => a.data), ['203.0.113.20'], 'the tour: GeoDNS answers us-east for 10.2.0.0/24');
  t.same(Object.keys(state.services).sort(), ['api', 'web']);
  t.equal(await proc.stop('SIGINT'), 0, 'Ctrl-C stops it cleanly');
});
