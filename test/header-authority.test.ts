import t, { type Test } from 'tap';
import { send } from './helpers/client.js';
import { simpleRoutes, startTestMeridian, type StaticOverrides, type TestMeridian } from './helpers/meridian.js';
import { startUpstream, type SeenRequest, type TestUpstream } from './helpers/upstream.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** All values of a header, in arrival order, from a raw header list. */
function rawValues(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).toLowerCase() === name) out.push(raw[i + 1] as string);
  return out;
}

/** The last request an upstream saw, or a thrown error. */
function last(up: TestUpstream): SeenRequest {
  const seen = up.seen.at(-1);
  if (seen === undefined) throw new Error('the upstream saw no request');
  return seen;
}

async function setup(t: Test, overrides: StaticOverrides = {}): Promise<{ up: TestUpstream; m: TestMeridian }> {
  const up = await startUpstream('auth');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }), overrides);
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  return { up, m };
}

t.test('client x-meridian-* headers never reach the upstream', async (t) => {
  const { up, m } = await setup(t);
  const res = await send(m.port, {
    headers: ['Host', 'a.test', 'X-Meridian-Version', 'canary', 'x-meridian-error', 'no-route', 'x-meridian-region', 'us-east', 'x-meridianish', 'kept', 'x-other', 'kept'],
  });
  t.equal(res.status, 200);
  const seen = last(up);
  for (const name of ['x-meridian-version', 'x-meridian-error', 'x-meridian-region']) t.same(rawValues(seen.rawHeaders, name), [], `${name} is stripped`);
  t.same(rawValues(seen.rawHeaders, 'x-meridianish'), ['kept'], 'only the x-meridian- namespace is stripped');
  t.same(rawValues(seen.rawHeaders, 'x-other'), ['kept']);
});

t.test("the service's split override header still forces a version and still reaches the upstream", async (t) => {
  const stable = await startUpstream('stable');
  const canary = await startUpstream('canary');
  const versioned = await startUpstream('versioned');
  const region = { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } };
  const m = await startTestMeridian({
    regions: region,
    services: {
      web: {
        split: { weights: { stable: 100, canary: 0 }, override: { header: 'x-meridian-version' } },
        versions: { stable: { endpoints: { 'eu-west': [stable.address] } }, canary: { endpoints: { 'eu-west': [canary.address] } } },
      },
      plain: {
        split: { weights: { stable: 100, canary: 0 }, override: { header: 'x-version' } },
        versions: { stable: { endpoints: { 'eu-west': [versioned.address] } }, canary: { endpoints: { 'eu-west': [versioned.address] } } },
      },
    },
    routes: { web: { pathPrefix: '/', service: 'web' }, plain: { pathPrefix: '/plain', service: 'plain' } },
  });
  t.teardown(async () => {
    await m.close();
    for (const up of [stable, canary, versioned]) await up.kill();
  });
  const forced = await send(m.port, { path: '/x', headers: ['Host', 'a.test', 'X-Meridian-Version', 'canary', 'x-meridian-debug', '1', 'x-meridian-version', 'second'] });
  t.equal(forced.status, 200);
  t.equal(forced.headers['x-upstream'], 'canary', 'the override forced the weight-0 version');
  const seen = last(canary);
  t.same(rawValues(seen.rawHeaders, 'x-meridian-version'), ['canary', 'second'], 'the override header reaches the upstream, every value');
  t.same(rawValues(seen.rawHeaders, 'x-meridian-debug'), [], 'other x-meridian-* headers do not');
  const unforced = await send(m.port, { path: '/y' });
  t.equal(unforced.headers['x-upstream'], 'stable');

  await send(m.port, { path: '/plain', headers: ['Host', 'a.test', 'x-version', 'canary', 'x-meridian-version', 'canary'] });
  const plain = last(versioned);
  t.same(rawValues(plain.rawHeaders, 'x-version'), ['canary'], 'an override header outside the namespace is forwarded as any header');
  t.same(rawValues(plain.rawHeaders, 'x-meridian-version'), [], "another service's override name is stripped");
});

t.test('x-request-id from an untrusted peer is always replaced', async (t) => {
  const { up, m } = await setup(t, { proxy: { trustedProxies: [] } });
  await send(m.port, { headers: { 'x-request-id': 'trace-42' } });
  const ids = rawValues(last(up).rawHeaders, 'x-request-id');
  t.equal(ids.length, 1);
  t.match(ids[0], UUID, 'a fresh UUID');
  up.handle((req) => req.socket.destroy());
  const failed = await send(m.port, { headers: { 'x-request-id': 'trace-43' } });
  t.equal(failed.status, 502);
  t.match(failed.headers['x-request-id'], UUID, 'the error carries the id actually used');
  t.equal(failed.headers['x-request-id'], rawValues(last(up).rawHeaders, 'x-request-id')[0], 'the same id the upstream got');
});

t.test('x-request-id from a trusted peer is kept only when it is a safe token', async (t) => {
  const { up, m } = await setup(t);
  const cases: { id: string; kept: boolean }[] = [
    { id: 'trace-42', kept: true },
    { id: 'a1b2.c3_d4:e5/f6+g7=h8@i9-', kept: true },
    { id: 'x'.repeat(128), kept: true },
    { id: 'x'.repeat(129), kept: false },
    { id: 'with\ttab', kept: false },
    { id: 'with space', kept: false },
    { id: 'quote"s', kept: false },
    { id: 'semi;colon', kept: false },
  ];
  for (const c of cases) {
    const res = await send(m.port, { headers: { 'x-request-id': c.id } });
    t.equal(res.status, 200);
    const ids = rawValues(last(up).rawHeaders, 'x-request-id');
    t.equal(ids.length, 1, `${JSON.stringify(c.id)}: one x-request-id upstream`);
    if (c.kept) t.equal(ids[0], c.id, `${JSON.stringify(c.id)} is kept`);
    else t.match(ids[0], UUID, `${JSON.stringify(c.id)} is replaced`);
  }
  await send(m.port, { headers: ['Host', 'a.test', 'x-request-id', 'first', 'x-request-id', 'second'] });
  t.same(rawValues(last(up).rawHeaders, 'x-request-id'), ['first'], 'several ids: the first is used, once');
  const rejected = await send(m.port, { path: 'http://user@a.test/', headers: { 'x-request-id': 'bad id' } });
  t.equal(rejected.status, 400);
  t.match(rejected.headers['x-request-id'], UUID, "Meridian's own rejections carry the id it chose too");
});

t.test('Connection cannot remove the headers Meridian is responsible for', async (t) => {
  const { up, m } = await setup(t);
  const res = await send(m.port, {
    method: 'POST',
    path: '/conn',
    headers: [
      'Host', 'a.test',
      'Connection', 'host, content-length, x-request-id, x-forwarded-for, x-forwarded-proto, x-forwarded-host, via, x-drop',
      'x-request-id', 'trace-7',
      'Content-Length', '5',
      'X-Drop', 'gone',
    ],
    body: 'hello',
  });
  t.equal(res.status, 200);
  const seen = last(up);
  t.same(rawValues(seen.rawHeaders, 'host'), ['a.test'], 'Host stays');
  t.same(rawValues(seen.rawHeaders, 'content-length'), ['5'], 'Content-Length stays');
  t.equal(seen.body.toString(), 'hello');
  t.same(rawValues(seen.rawHeaders, 'x-request-id'), ['trace-7'], 'x-request-id stays');
  t.same(rawValues(seen.rawHeaders, 'x-forwarded-for'), ['127.0.0.1']);
  t.same(rawValues(seen.rawHeaders, 'x-forwarded-proto'), ['http']);
  t.same(rawValues(seen.rawHeaders, 'x-forwarded-host'), ['a.test']);
  t.same(rawValues(seen.rawHeaders, 'via'), ['1.1 test-node']);
  t.same(rawValues(seen.rawHeaders, 'x-drop'), [], 'other named headers are still dropped');
});
