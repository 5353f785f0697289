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

/** Starts one upstream and a Meridian in front of it; both are torn down with the test. */
async function setup(t: Test, overrides: StaticOverrides = {}): Promise<{ up: TestUpstream; m: TestMeridian }> {
  const up = await startUpstream('hdr');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }), overrides);
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  return { up, m };
}

/** The last request the upstream saw, or a thrown error. */
function last(up: TestUpstream): SeenRequest {
  const seen = up.seen.at(-1);
  if (seen === undefined) throw new Error('the upstream saw no request');
  return seen;
}

t.test('request: hop-by-hop headers stop at Meridian, end-to-end headers pass intact', async (t) => {
  const { up, m } = await setup(t);
  const res = await send(m.port, {
    method: 'POST',
    path: '/hop?x=1',
    headers: [
      'Host', 'Shop.Example.COM:8443',
      'Connection', 'x-secret, keep-alive',
      'X-Secret', '1',
      'Keep-Alive', 'timeout=5',
      'Proxy-Connection', 'keep-alive',
      'TE', 'deflate, Trailers',
      'Trailer', 'x-checksum',
      'Upgrade', 'websocket',
      'Transfer-Encoding', 'chunked',
      'X-Custom', 'value with  spaces',
      'X-Multi', 'one',
      'X-Multi', 'two',
      'Cookie', 'a=1',
      'Cookie', 'b=2',
      'Authorization', 'Bearer abc.def',
      'Accept', 'application/json',
    ],
    body: 'chunked body',
  });
  t.equal(res.status, 200);
  const seen = last(up);
  t.equal(seen.url, '/hop?x=1', 'the request target is forwarded unchanged');
  t.equal(seen.body.toString(), 'chunked body', 'the chunked body arrives');
  for (const name of ['keep-alive', 'proxy-connection', 'trailer', 'upgrade', 'x-secret']) {
    t.same(rawValues(seen.rawHeaders, name), [], `${name} does not reach the upstream`);
  }
  t.same(rawValues(seen.rawHeaders, 'te'), ['trailers'], 'of TE only `trailers` reaches the upstream: it says the client reads trailers');
  // The connection to the upstream is Meridian's own hop: its only Connection header is undici's.
  t.same(rawValues(seen.rawHeaders, 'connection'), ['keep-alive'], "the client's Connection header is not forwarded");
  // The client's framing is decoded; Meridian frames the body for its own hop (content-length
  // when the body is already whole, else chunked), never by relaying the client's header.
  const framing = rawValues(seen.rawHeaders, 'transfer-encoding');
  t.ok(framing.length === 0 || (framing.length === 1 && framing[0] === 'chunked'), `no relayed transfer-encoding (got ${JSON.stringify(framing)})`);
  t.equal(framing.length + rawValues(seen.rawHeaders, 'content-length').length, 1, 'the body has exactly one framing');
  t.same(rawValues(seen.rawHeaders, 'host'), ['Shop.Example.COM:8443'], 'Host is forwarded unchanged');
  t.same(rawValues(seen.rawHeaders, 'x-custom'), ['value with  spaces'], 'custom header intact');
  t.same(rawValues(seen.rawHeaders, 'x-multi'), ['one', 'two'], 'repeated headers keep every value, in order');
  t.same(rawValues(seen.rawHeaders, 'cookie'), ['a=1', 'b=2'], 'every cookie header arrives');
  t.same(rawValues(seen.rawHeaders, 'authorization'), ['Bearer abc.def'], 'authorization arrives');
  t.same(rawValues(seen.rawHeaders, 'accept'), ['application/json']);
});

t.test('request: a Connection header naming several headers strips each of them, case-insensitively', async (t) => {
  const { up, m } = await setup(t);
  const res = await send(m.port, {
    headers: ['Host', 'h.test', 'Connection', 'X-One', 'Connection', ' x-TWO ,close', 'x-one', 'a', 'X-Two', 'b', 'X-Three', 'c'],
  });
  t.equal(res.status, 200);
  const seen = last(up);
  t.same(rawValues(seen.rawHeaders, 'x-one'), [], 'named in the first Connection header');
  t.same(rawValues(seen.rawHeaders, 'x-two'), [], 'named in a second Connection header');
  t.same(rawValues(seen.rawHeaders, 'x-three'), ['c'], 'headers not named pass');
});

t.test('request: Expect is not forwarded, the body still is', async (t) => {
  const { up, m } = await setup(t);
  const res = await send(m.port, { method: 'PUT', headers: { expect: '100-continue', 'content-length': '5' }, body: 'hello' });
  t.equal(res.status, 200);
  const seen = last(up);
  t.same(rawValues(seen.rawHeaders, 'expect'), []);
  t.equal(seen.body.toString(), 'hello');
  t.same(rawValues(seen.rawHeaders, 'content-length'), ['5'], 'content-length is kept');
});

t.test('request: an absolute-form target is forwarded with its own authority as Host', async (t) => {
  // RFC 9112 3.2.2: a proxy receiving absolute-form MUST ignore the received Host and
  // generate Host from the request target. Meridian routes by the target's host, so the
  // upstream must be told that same host, not the client's (possibly conflicting) Host.
  const { up, m } = await setup(t);
  const res = await send(m.port, { path: 'http://api.example.com/abs?q=1', headers: { host: 'other.test' } });
  t.equal(res.status, 200);
  const seen = last(up);
  t.equal(seen.url, '/abs?q=1', 'forwarded in origin form');
  t.same(rawValues(seen.rawHeaders, 'host'), ['api.example.com'], 'Host is the authority of the absolute-form target');
});

t.test('forwarding headers from a trusted peer (127.0.0.0/8 is trusted)', async (t) => {
  const { up, m } = await setup(t);

  await send(m.port, { headers: { host: 'app.example.com' } });
  let seen = last(up);
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'no incoming XFF: the peer');
  t.equal(seen.headers['x-forwarded-proto'], 'http', 'X-Forwarded-Proto defaults to http');
  t.equal(seen.headers['x-forwarded-host'], 'app.example.com', 'X-Forwarded-Host is the original Host');
  t.same(rawValues(seen.rawHeaders, 'via'), ['1.1 test-node'], 'Via names this node');

  await send(m.port, {
    headers: [
      'Host', 'app.example.com',
      'X-Forwarded-For', '203.0.113.7',
      'X-Forwarded-For', '198.51.100.2, 10.0.0.1',
      'X-Forwarded-Proto', 'https',
      'X-Forwarded-Host', 'public.example.com',
      'Via', '1.0 fred',
      'Via', '1.1 edge-a',
    ],
  });
  seen = last(up);
  t.same(rawValues(seen.rawHeaders, 'x-forwarded-for'), ['203.0.113.7, 198.51.100.2, 10.0.0.1, 127.0.0.1'], 'incoming XFF is kept and the peer appended, as one header');
  t.same(rawValues(seen.rawHeaders, 'x-forwarded-proto'), ['https'], 'a trusted proxy sets the scheme');
  t.same(rawValues(seen.rawHeaders, 'x-forwarded-host'), ['public.example.com'], "a trusted proxy's X-Forwarded-Host is kept");
  t.same(rawValues(seen.rawHeaders, 'via'), ['1.0 fred, 1.1 edge-a, 1.1 test-node'], 'Via gets this node appended');
  t.same(rawValues(seen.rawHeaders, 'host'), ['app.example.com'], 'Host unchanged');
});

t.test('forwarding headers from an untrusted peer', async (t) => {
  const { up, m } = await setup(t, { proxy: { trustedProxies: [] } });
  await send(m.port, {
    headers: [
      'Host', 'app.example.com',
      'X-Forwarded-For', '203.0.113.7, 10.9.9.9',
      'X-Forwarded-Proto', 'https',
      'X-Forwarded-Host', 'spoofed.example.com',
      'Via', '1.0 fred',
    ],
  });
  const seen = last(up);
  t.same(rawValues(seen.rawHeaders, 'x-forwarded-for'), ['127.0.0.1'], 'an untrusted XFF is replaced by the peer address');
  t.same(rawValues(seen.rawHeaders, 'x-forwarded-proto'), ['http'], 'an untrusted X-Forwarded-Proto is replaced');
  t.same(rawValues(seen.rawHeaders, 'x-forwarded-host'), ['app.example.com'], 'an untrusted X-Forwarded-Host is replaced by Host');
  t.same(rawValues(seen.rawHeaders, 'via'), ['1.0 fred, 1.1 test-node'], 'Via is appended to whatever the peer sent');
});

t.test('x-request-id: generated when absent, kept when present', async (t) => {
  const { up, m } = await setup(t);
  await send(m.port);
  const first = rawValues(last(up).rawHeaders, 'x-request-id');
  t.equal(first.length, 1, 'exactly one x-request-id is generated');
  t.match(first[0], UUID, 'it is a UUID');
  await send(m.port);
  const second = rawValues(last(up).rawHeaders, 'x-request-id');
  t.not(second[0], first[0], 'each request gets its own id');

  await send(m.port, { headers: { 'x-request-id': 'trace-42' } });
  t.same(rawValues(last(up).rawHeaders, 'x-request-id'), ['trace-42'], 'an incoming id is kept, not duplicated');

  up.handle((req) => req.socket.destroy());
  const failed = await send(m.port, { headers: { 'x-request-id': 'trace-43' } });
  t.equal(failed.status, 502);
  t.equal(failed.headers['x-request-id'], 'trace-43', "Meridian's own error responses carry the request id");
});

t.test('response: hop-by-hop headers stop at Meridian, end-to-end ones pass', async (t) => {
  const { up, m } = await setup(t);
  up.handle((req, res) => {
    const body = 'response body';
    if (req.url === '/chunked') {
      res.writeHead(200, [
        'Content-Type', 'text/plain',
        'Connection', 'x-foo',
        'X-Foo', 'internal',
        'Keep-Alive', 'timeout=5, max=100',
        'Proxy-Connection', 'keep-alive',
        'Set-Cookie', 'a=1; Path=/',
        'Set-Cookie', 'b=2; HttpOnly',
        'Set-Cookie', 'c=3; Secure',
        'X-End-To-End', 'kept',
      ]);
      res.write('response ');
      res.end('body');
      return;
    }
    res.writeHead(200, ['Content-Type', 'text/plain', 'Content-Length', String(Buffer.byteLength(body)), 'Connection', 'x-bar, keep-alive', 'X-Bar', 'internal']);
    res.end(body);
  });

  const chunked = await send(m.port, { path: '/chunked' });
  t.equal(chunked.status, 200);
  t.equal(chunked.text, 'response body', 'the chunked body arrives whole');
  t.same(rawValues(chunked.rawHeaders, 'x-foo'), [], 'a header named in the upstream Connection is dropped');
  t.same(rawValues(chunked.rawHeaders, 'keep-alive'), [], 'upstream keep-alive is dropped');
  t.same(rawValues(chunked.rawHeaders, 'proxy-connection'), [], 'upstream proxy-connection is dropped');
  t.not(String(chunked.headers.connection), 'x-foo', "the upstream's Connection value is not relayed");
  t.ok(rawValues(chunked.rawHeaders, 'connection').every((v) => !/x-foo/i.test(v)), 'no Connection header names x-foo');
  t.same(rawValues(chunked.rawHeaders, 'transfer-encoding'), ['chunked'], "one transfer-encoding: Meridian's own framing");
  t.same(rawValues(chunked.rawHeaders, 'set-cookie'), ['a=1; Path=/', 'b=2; HttpOnly', 'c=3; Secure'], 'every Set-Cookie arrives separately');
  t.equal(chunked.headers['x-end-to-end'], 'kept');
  t.equal(chunked.headers['x-meridian-region'], undefined, 'no debug headers by default');
  t.equal(chunked.headers['x-meridian-version'], undefined);
  t.equal(chunked.headers['x-meridian-endpoint'], undefined);

  const fixed = await send(m.port, { path: '/fixed' });
  t.equal(fixed.status, 200);
  t.same(rawValues(fixed.rawHeaders, 'content-length'), ['13'], 'content-length is preserved');
  t.same(rawValues(fixed.rawHeaders, 'transfer-encoding'), [], 'a fixed-length response is not re-chunked');
  t.same(rawValues(fixed.rawHeaders, 'x-bar'), []);
  t.equal(fixed.text, 'response body');
});

t.test('debug headers name the region, version and endpoint when enabled', async (t) => {
  const { up, m } = await setup(t, { proxy: { debugHeaders: true } });
  const res = await send(m.port);
  t.equal(res.status, 200);
  t.equal(res.headers['x-meridian-region'], 'eu-west');
  t.equal(res.headers['x-meridian-version'], 'stable');
  t.equal(res.headers['x-meridian-endpoint'], up.address);
});
