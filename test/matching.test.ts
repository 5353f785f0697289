import t from 'tap';
import { send } from './helpers/client.js';
import { startTestMeridian } from './helpers/meridian.js';
import { startUpstream } from './helpers/upstream.js';

t.test('host and path matching through real sockets', async (t) => {
  const names = ['api', 'apiV2', 'wild', 'deepWild', 'catchAll', 'static'];
  const ups = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await startUpstream(n)] as const)));
  const service = (n: string) => ({ versions: { stable: { endpoints: { local: [ups[n]!.address] } } } });
  const m = await startTestMeridian({
    regions: { local: { location: { lat: 0, lon: 0 } } },
    services: Object.fromEntries(names.map((n) => [n, service(n)])),
    routes: {
      api: { hosts: ['api.example.com'], pathPrefix: '/', service: 'api' },
      apiV2: { hosts: ['api.example.com'], pathPrefix: '/v2/', service: 'apiV2' },
      wild: { hosts: ['*.example.net'], pathPrefix: '/', service: 'wild' },
      deepWild: { hosts: ['*.eu.example.net'], pathPrefix: '/', service: 'deepWild' },
      static: { pathPrefix: '/static/', service: 'static' },
      catchAll: { hosts: ['www.example.org'], pathPrefix: '/only/', service: 'catchAll' },
    },
  });
  t.teardown(async () => {
    await m.close();
    await Promise.all(Object.values(ups).map((u) => u.kill()));
  });
  const via = async (host: string | null, path: string): Promise<string> => {
    const res = await send(m.port, { path, headers: host === null ? {} : { host } });
    return res.status === 200 ? String(res.headers['x-upstream']) : `${res.status}:${String(res.headers['x-meridian-error'])}`;
  };
  t.equal(await via('api.example.com', '/users'), 'api', 'exact host');
  t.equal(await via('API.Example.COM:8443', '/users'), 'api', 'host is case-insensitive and the port is ignored');
  t.equal(await via('api.example.com.', '/users'), 'api', 'a trailing dot is ignored');
  t.equal(await via('api.example.com', '/v2/users'), 'apiV2', 'longest path prefix wins');
  t.equal(await via('api.example.com', '/v2'), 'api', 'a prefix is matched as a string: /v2 is not under /v2/');
  t.equal(await via('a.example.net', '/'), 'wild', 'wildcard matches one label');
  t.equal(await via('a.b.example.net', '/'), 'wild', 'wildcard matches deeper names');
  t.equal(await via('x.eu.example.net', '/'), 'deepWild', 'the longest wildcard suffix wins');
  t.equal(await via('example.net', '/'), '404:no-route', 'a wildcard does not match the bare domain');
  t.equal(await via('www.example.org', '/only/x'), 'catchAll', 'host routes match their prefix');
  t.equal(await via('www.example.org', '/static/app.js'), 'static', 'a host whose paths do not match falls through to host-less routes');
  t.equal(await via('unknown.test', '/static/a.css'), 'static', 'host-less routes match any host');
  t.equal(await via('unknown.test', '/other'), '404:no-route', 'nothing matches: 404 no-route');
  const res404 = await send(m.port, { path: '/nothing', headers: { host: 'unknown.test' } });
  t.equal(res404.status, 404);
  t.match(res404.headers['content-type'], /^text\/plain/);
  t.equal(res404.text, 'No route matches this host and path\n');
  t.equal(await via('api.example.com', '/v2/x?q=/v3/'), 'apiV2', 'the query string does not take part in matching');
  t.equal(ups.apiV2!.seen.at(-1)?.url, '/v2/x?q=/v3/', 'the request target is forwarded unchanged');

  const absolute = await send(m.port, { path: 'http://api.example.com/v2/abs', headers: { host: 'ignored.test' } });
  t.equal(absolute.headers['x-upstream'], 'apiV2', 'absolute-form targets route by their own host');
  t.equal(ups.apiV2!.seen.at(-1)?.url, '/v2/abs', 'and are forwarded in origin form');
});
