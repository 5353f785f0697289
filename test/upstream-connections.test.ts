import type { ServerResponse } from 'node:http';
import t from 'tap';
import { send } from './helpers/client.js';
import { startTestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream } from './helpers/upstream.js';

/** Two services on the same upstream address (so the same connection pool), routed by path. */
function twoServices(address: string, fast: Record<string, unknown>): Record<string, unknown> {
  const endpoints = { 'eu-west': [address] };
  return {
    regions: { 'eu-west': { location: { lat: 50, lon: 8 } } },
    services: {
      slow: { versions: { stable: { endpoints } }, retries: { attempts: 0, perTryTimeout: '10s' } },
      fast: { versions: { stable: { endpoints } }, ...fast },
    },
    routes: {
      slow: { pathPrefix: '/slow', service: 'slow' },
      fast: { pathPrefix: '/fast', service: 'fast' },
    },
  };
}

t.test('requests beyond proxy.maxUpstreamConnections wait for a connection in order, and the upstream never sees more connections', async (t) => {
  const up = await startUpstream('up');
  up.handle((req, res) => setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(`done ${req.url}`), 50));
  const m = await startTestMeridian(twoServices(up.address, { retries: { attempts: 0, perTryTimeout: '5s' } }), { proxy: { maxUpstreamConnections: 2 } });
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  let most = 0;
  const watch = setInterval(() => (most = Math.max(most, up.connections())), 5);
  const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => send(m.port, { path: `/fast/${i}` })));
  clearInterval(watch);
  t.same(answers.map((a) => a.status), Array(8).fill(200), 'every request was served');
  t.ok(most <= 3, `the upstream saw at most 2 proxy connections (+1 health check) at once: ${most}`);
  t.ok(most >= 2, 'and the connections were used in parallel');
});

t.test('a try still waiting for a connection at its deadline is 503 upstream-overloaded, never sent, and not held against the endpoint', async (t) => {
  const up = await startUpstream('up');
  let release: ServerResponse | null = null;
  up.handle((req, res) => {
    if (req.url?.startsWith('/slow') === true) release = res;
    else res.writeHead(200, { 'content-type': 'text/plain' }).end('fast');
  });
  const m = await startTestMeridian(twoServices(up.address, { retries: { attempts: 0, perTryTimeout: '300ms' } }), { proxy: { maxUpstreamConnections: 1 } });
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  const slow = send(m.port, { path: '/slow' });
  await waitFor(() => release !== null, 'the upstream to hold the slow request');
  const startedAt = Date.now();
  const waited = await send(m.port, { path: '/fast' });
  t.equal(waited.status, 503, 'the waiting request gets 503');
  t.equal(waited.headers['x-meridian-error'], 'upstream-overloaded');
  t.equal(waited.headers['retry-after'], '1');
  t.ok(Date.now() - startedAt >= 250, 'after its try deadline, not before');
  t.equal(up.seen.filter((s) => s.url === '/fast').length, 0, 'it never reached the upstream');

  (release as unknown as ServerResponse).writeHead(200, { 'content-type': 'text/plain' }).end('slow');
  t.equal((await slow).status, 200, 'the request holding the connection completes');
  t.equal((await send(m.port, { path: '/fast' })).status, 200, 'and the next one gets the connection');
  const state = (await send(m.adminPort, { path: '/api/v1/state' })).text;
  t.notMatch(state, /"up":false/, 'no endpoint was ejected');
  t.match((await send(m.adminPort, { path: '/metrics' })).text, /meridian_proxy_errors_total\{code="upstream-overloaded"\} 1\n/);
});
