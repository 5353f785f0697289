import t, { type Test } from 'tap';
import { send } from './helpers/client.js';
import { parseRawResponse, rawConnect, type RawResponse } from './helpers/data-plane.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

/** Two services: `/admin` (upstream `admin`) and everything else (upstream `split`); `escapedSlashes` as given. */
async function setup(t: Test, escapedSlashes?: string): Promise<{ split: TestUpstream; admin: TestUpstream; m: TestMeridian }> {
  const split = await startUpstream('split');
  const admin = await startUpstream('admin');
  const region = { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } };
  const m = await startTestMeridian(
    {
      regions: region,
      services: {
        split: { versions: { stable: { endpoints: { 'eu-west': [split.address] } } } },
        admin: { versions: { stable: { endpoints: { 'eu-west': [admin.address] } } } },
      },
      routes: { split: { pathPrefix: '/', service: 'split' }, admin: { pathPrefix: '/admin', service: 'admin' } },
    },
    escapedSlashes === undefined ? {} : { proxy: { escapedSlashes } },
  );
  t.teardown(async () => {
    await m.close();
    await split.kill();
    await admin.kill();
  });
  return { split, admin, m };
}

/** Sends raw bytes on a fresh connection and reads one complete response (content-length framed). */
async function rawRequest(port: number, bytes: string): Promise<RawResponse> {
  const client = await rawConnect(port);
  try {
    client.socket.write(bytes);
    const data = await client.until((d) => {
      const res = parseRawResponse(d);
      return res !== null && res.body.length >= Number(res.headers.get('content-length')?.[0] ?? 0);
    }, 'a complete response');
    return parseRawResponse(data) as RawResponse;
  } finally {
    client.socket.destroy();
  }
}

/** Where a request went: the upstream label (or the error code) and the target it was sent. */
async function outcome(m: TestMeridian, split: TestUpstream, admin: TestUpstream, path: string): Promise<string> {
  const res = await send(m.port, { path, headers: { host: 'a.test' } });
  if (res.status !== 200) return `${res.status} ${String(res.headers['x-meridian-error'])}`;
  const up = res.headers['x-upstream'] === 'admin' ? admin : split;
  return `${String(res.headers['x-upstream'])} ${up.seen.at(-1)?.url ?? '?'}`;
}

t.test('paths are normalised before matching, and the normalised path is forwarded (escapedSlashes: keep)', async (t) => {
  const { split, admin, m } = await setup(t);
  const table: [string, string][] = [
    ['/split/../admin', 'admin /admin'],
    ['/split/./../admin/x', 'admin /admin/x'],
    ['/a/./b', 'split /a/b'],
    ['/a/b/..', 'split /a/'],
    ['/../../admin', 'admin /admin'],
    ['/%61dmin', 'admin /admin'],
    ['/%2e%2e/admin', 'admin /admin'],
    ['/x/%7euser/%3f%2a', 'split /x/~user/%3F%2A'],
    ['/x/%c3%a9', 'split /x/%C3%A9'],
    ['/x%2Fy', 'split /x%2Fy'],
    ['/x%2fy%5c', 'split /x%2Fy%5C'],
    ['/admin%2F..%2Fsecret', 'admin /admin%2F..%2Fsecret'],
    ['/a/./b?q=/../%61&r=%2F', 'split /a/b?q=/../%61&r=%2F'],
    ['/plain/path?x=1', 'split /plain/path?x=1'],
    ['/x/%00', '400 bad-request'],
    ['/x/%zz', '400 bad-request'],
    ['/x/%4', '400 bad-request'],
  ];
  for (const [path, expected] of table) t.equal(await outcome(m, split, admin, path), expected, path);
});

t.test('escapedSlashes: reject answers 400 for %2F and %5C', async (t) => {
  const { split, admin, m } = await setup(t, 'reject');
  t.equal(await outcome(m, split, admin, '/x%2Fy'), '400 bad-request');
  t.equal(await outcome(m, split, admin, '/x%5cy'), '400 bad-request');
  t.equal(await outcome(m, split, admin, '/x/%61'), 'split /x/a', 'other escapes are still decoded');
  t.equal(await outcome(m, split, admin, '/x?y=%2F'), 'split /x?y=%2F', 'the query is not judged');
});

t.test('escapedSlashes: unescape decodes %2F and %5C before matching and forwarding', async (t) => {
  const { split, admin, m } = await setup(t, 'unescape');
  t.equal(await outcome(m, split, admin, '/x%2Fy'), 'split /x/y');
  t.equal(await outcome(m, split, admin, '/x%5Cy'), 'split /x\\y');
  t.equal(await outcome(m, split, admin, '/split%2F..%2Fadmin'), 'admin /admin', 'decoded slashes take part in dot-segment removal');
});

t.test('a request target that is neither origin-form, absolute-form nor OPTIONS *', async (t) => {
  const { split, m } = await setup(t);
  // node:http's parser refuses most such targets itself; these it lets through.
  for (const target of ['*', '*x', 'ftp://a.test/x']) {
    const res = await rawRequest(m.port, `GET ${target} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
    t.equal(res.status, 400, `GET ${target}`);
    t.same(res.headers.get('x-meridian-error'), ['bad-request']);
  }
  const options = await rawRequest(m.port, 'OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal(options.status, 404, 'OPTIONS * is not malformed; no route serves it');
  const absolute = await rawRequest(m.port, 'GET http://a.test/./x/../y?q HTTP/1.1\r\nHost: other.test\r\n\r\n');
  t.equal(absolute.status, 200, 'absolute-form');
  t.equal(split.seen.at(-1)?.url, '/y?q', 'absolute-form paths are normalised too');
  const bare = await rawRequest(m.port, 'GET http://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal(bare.status, 200);
  t.equal(split.seen.at(-1)?.url, '/', 'absolute-form without a path is /');
});

t.test('Host syntax: reg-name, IPv4 or [IPv6] with an optional port; anything else is 400', async (t) => {
  const { split, m } = await setup(t);
  const good = ['b.test', 'B.Test:8080', '127.0.0.1', '127.0.0.1:80', '[::1]', '[::1]:8080', '[2001:db8::1]', 'xn--bcher-kva.test', 'a_b-c~d.test', 'b.test.', 'sub%2Ddomain.test', 'b.test:'];
  for (const host of good) {
    const res = await rawRequest(m.port, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    t.equal(res.status, 200, `Host: ${host}`);
    t.equal(split.seen.at(-1)?.headers.host, host, `Host: ${host} is forwarded as sent`);
  }
  const bad = ['b.test@evil.test', 'user:pw@b.test', 'b.test x', 'b.test:80x', 'b.test:123456', '[::1', '[zz::1]', '[::1]x', 'b.test/path', 'b.test?', 'b.test#', 'b"test', 'b.test:80:80', '%zz.test', 'b<test'];
  for (const host of bad) {
    const res = await rawRequest(m.port, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    t.equal(res.status, 400, `Host: ${host}`);
    t.same(res.headers.get('x-meridian-error'), ['bad-request']);
  }
  const twice = await rawRequest(m.port, 'GET / HTTP/1.1\r\nHost: b.test\r\nHost: b.test\r\n\r\n');
  t.equal(twice.status, 400, 'several Host headers, even equal ones');
  const userinfo = await rawRequest(m.port, 'GET http://user@b.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n');
  t.equal(userinfo.status, 400, 'absolute-form with userinfo');
  const badAbsolute = await rawRequest(m.port, 'GET http://b.test:x/ HTTP/1.1\r\nHost: b.test\r\n\r\n');
  t.equal(badAbsolute.status, 400, 'absolute-form with a bad port');
});

t.test('upgrade requests follow the same Host and path rules', async (t) => {
  const { admin, m } = await setup(t);
  const upgrade = (target: string, host: string): string =>
    `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nx-meridian-spoof: 1\r\n\r\n`;
  const badHost = await rawRequest(m.port, upgrade('/chat', 'b.test@evil.test'));
  t.equal(badHost.status, 400);
  const nul = await rawRequest(m.port, upgrade('/chat%00', 'b.test'));
  t.equal(nul.status, 400);
  // The upstream is plain HTTP: it answers the upgrade request with an ordinary 200, relayed as is.
  const routed = await rawRequest(m.port, upgrade('/split/../admin/ws', 'b.test'));
  t.equal(routed.status, 200);
  t.equal(admin.seen.at(-1)?.url, '/admin/ws', 'routed and forwarded on the normalised path');
  t.equal(admin.seen.at(-1)?.headers['x-meridian-spoof'], undefined, 'x-meridian-* stripped');
});
