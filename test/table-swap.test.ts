import { createServer, type AddressInfo } from 'node:net';
import t from 'tap';
import { classifyUpstreamError, ERRORS } from '../src/proxy/errors.js';
import { UpstreamRegistry } from '../src/proxy/upstream.js';
import { streamRequest } from './helpers/data-plane.js';
import { simpleRoutes, startTestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream } from './helpers/upstream.js';

t.test('a request resolved on the old table is sent after the swap to the upstream that table chose, even though the new one dropped it', async (t) => {
  const old = await startUpstream('old');
  const next = await startUpstream('next');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [old.address] }));
  t.teardown(async () => {
    await m.close();
    await old.kill();
    await next.kill();
  });
  t.equal((await streamRequest(m.port)).status, 200, 'the old upstream has a warm pool');
  // A PUT is idempotent: its body is held until complete before the first try, so the try goes out after the swap.
  let finish: (() => void) | null = null;
  const pending = streamRequest(m.port, {
    method: 'PUT',
    path: '/slow-body',
    headers: { 'content-length': '10' },
    write(req) {
      req.write('hello');
      finish = () => req.end('world');
    },
  });
  await waitFor(() => finish !== null, 'the first half of the body to be written');
  await m.writeRoutes(simpleRoutes({ 'eu-west': [next.address] }));
  await waitFor(() => m.meridian.applier.current?.revision === 2, 'the swap');
  (finish as unknown as () => void)();
  const res = await pending;
  t.equal(res.status, 200, 'answered, not 502');
  t.equal(res.headers['x-upstream'], 'old', 'by the upstream the old table chose');
  t.equal(old.seen.at(-1)?.body.toString(), 'helloworld');
});

t.test('bodies that no retry could send again stream to the upstream before they are complete', async (t) => {
  const up = await startUpstream('stream', { collectBody: false });
  up.handle((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('done'));
  });
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }));
  const noRetries = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }, { retries: { attempts: 0 } }));
  t.teardown(async () => {
    await m.close();
    await noRetries.close();
    await up.kill();
  });
  const cases: [string, number, string][] = [
    ['POST (not idempotent)', m.port, 'POST'],
    ['PUT with retries: { attempts: 0 }', noRetries.port, 'PUT'],
  ];
  for (const [what, port, method] of cases) {
    const before = up.started;
    let finish: (() => void) | null = null;
    const pending = streamRequest(port, {
      method,
      headers: { 'content-length': '10' },
      write(req) {
        req.write('hello');
        finish = () => req.end('world');
      },
    });
    await waitFor(() => up.started > before, `${what}: the request to reach the upstream while its body is still coming`);
    (finish as unknown as () => void)();
    t.equal((await pending).status, 200, what);
  }
});

t.test('a retired upstream closes after its grace, comes back when a table uses it again, and a closed one fails before sending', async (t) => {
  const up = await startUpstream('u');
  t.teardown(() => up.kill());
  const registry = new UpstreamRegistry({ graceMs: 200 });
  const address = { host: '127.0.0.1', port: up.port };
  const first = registry.acquire(address, 1_000);
  registry.retain([]);
  t.equal(registry.retired, 1, 'retired, still open');
  t.equal(registry.acquire(address, 1_000), first, 'a table that uses it again gets the same upstream');
  t.equal(registry.retired, 0);
  registry.retain([]);
  await waitFor(() => first.closed, 'the grace to end', 2_000);
  t.not(registry.acquire(address, 1_000), first, 'after the grace a new upstream is made');
  const failure = await new Promise<Error>((resolve) => {
    first.pool.dispatch({ path: '/', method: 'GET' }, { onConnect() {}, onHeaders: () => true, onData: () => true, onComplete() {}, onError: resolve });
  });
  const error = classifyUpstreamError(failure);
  t.equal(error, ERRORS.upstreamRetired, 'a closed upstream fails with upstream-retired');
  t.equal(error.beforeSend, true, 'which any method may retry elsewhere');
  t.equal(up.started, 0, 'nothing reached the upstream');
  await registry.closeAll(true);
});

t.test('a node that cannot bind its proxy port stops everything it started: no health checks keep running', async (t) => {
  const up = await startUpstream('checked');
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    busy.close();
    await up.kill();
  });
  const port = (busy.address() as AddressInfo).port;
  const routes = simpleRoutes({ 'eu-west': [up.address] }, { healthCheck: { interval: '100ms', timeout: '90ms' } });
  await t.rejects(startTestMeridian(routes, { proxy: { listen: `127.0.0.1:${port}` } }), { code: 'EADDRINUSE' });
  await new Promise((resolve) => setTimeout(resolve, 500)); // five check intervals
  t.ok(up.healthChecks <= 1, `no check ran after the failed start (${up.healthChecks} seen; one may have been under way)`);
});
