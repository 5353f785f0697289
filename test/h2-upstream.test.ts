import t, { type Test } from 'tap';
import { routingIssues } from '../src/cli/validate.js';
import { formatIssue } from '../src/config/issues.js';
import { connectionIdentity } from '../src/net/upstream-tls.js';
import { send, getJson } from './helpers/client.js';
import { startH2Upstream } from './helpers/h2-upstream.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { compileClean, groupOf, versionOf } from './helpers/table.js';
import { makeTestCertificates, startTlsUpstream, type TestCertificates } from './helpers/tls.js';

const EU = { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } };

/** A document with one service per entry, each one version `stable` in eu-west. */
function table(services: Record<string, Record<string, unknown>>, service: Record<string, unknown> = {}): Record<string, unknown> {
  return { regions: EU, services: Object.fromEntries(Object.entries(services).map(([name, version]) => [name, { ...service, versions: { stable: version } }])), routes: {} };
}

let certs: TestCertificates;
t.before(async () => {
  certs = await makeTestCertificates();
});

t.test('protocol: h2 needs TLS, h2c plaintext, and only the three values exist', async (t) => {
  const at = (service: string, rest: string): string => `services.${service}.versions.stable.${rest}`;
  const found = routingIssues(
    table({
      a: { protocol: 'h2', endpoints: { 'eu-west': ['a.internal:80', 'http://a.internal:81'] } },
      b: { protocol: 'h2c', endpoints: { 'eu-west': ['https://a.internal:443', 'a.internal:82'] }, tls: { verify: false } },
      c: { protocol: 'h3', endpoints: { 'eu-west': [{ address: 'a.internal:80', protocol: 'spdy' }] } },
      d: { endpoints: { 'eu-west': [{ address: 'a.internal:80', protocol: 'h2' }, { address: 'https://a.internal:443', protocol: 'h2c' }] } },
    }),
  )
    .issues.filter((i) => i.reason !== 'empty')
    .map(formatIssue)
    .sort();
  const h2 = 'protocol h2 is HTTP/2 over TLS: write the endpoint https://host:port or give it a tls block (h2c is HTTP/2 over plaintext)';
  const h2c = 'protocol h2c is HTTP/2 over plaintext, but this endpoint uses TLS: use protocol h2 for HTTP/2 over TLS';
  const values = 'expected http1 (or h1), h2 (HTTP/2 over TLS) or h2c (HTTP/2 over plaintext)';
  t.same(
    found,
    [
      `${at('a', 'endpoints.eu-west[0]')}: ${h2}`,
      `${at('a', 'endpoints.eu-west[1]')}: ${h2}`,
      `${at('b', 'endpoints.eu-west[0]')}: ${h2c}`,
      `${at('b', 'endpoints.eu-west[1]')}: ${h2c}`,
      `${at('c', 'endpoints.eu-west[0].protocol')}: ${values}`,
      `${at('c', 'protocol')}: ${values}`,
      `${at('d', 'endpoints.eu-west[0]')}: ${h2}`,
      `${at('d', 'endpoints.eu-west[1]')}: ${h2c}`,
    ].sort(),
    'each endpoint whose protocol cannot be spoken over its transport is an error at the endpoint',
  );
});

t.test('protocol reaches each endpoint: the version sets it, an endpoint object overrides it; pools and health are keyed by it', async (t) => {
  const compiled = compileClean(
    table({
      a: { protocol: 'h2c', endpoints: { 'eu-west': ['10.0.0.1:80', { address: '10.0.0.2:80', protocol: 'h1' }, { address: '10.0.0.3:80', protocol: 'http1' }] } },
      b: { protocol: 'h2', endpoints: { 'eu-west': ['https://10.0.0.1:443', { address: '10.0.0.1:80', protocol: 'h2c' }] } },
      c: { endpoints: { 'eu-west': ['10.0.0.1:80', 'https://10.0.0.1:443'] } },
    }),
  );
  const protocols = (service: string): (string | undefined)[] => groupOf(versionOf(compiled, service), 'eu-west').all.map((ep) => ep.address.protocol);
  t.same(protocols('a'), ['h2c', undefined, undefined], 'h1 and http1 are HTTP/1.1, which a target leaves unsaid');
  t.same(protocols('b'), ['h2', 'h2c']);
  t.same(protocols('c'), [undefined, undefined], 'tables without protocol are what they were');
  const [h2c] = groupOf(versionOf(compiled, 'a'), 'eu-west').all;
  const [plain] = groupOf(versionOf(compiled, 'c'), 'eu-west').all;
  t.not(h2c?.upstream, plain?.upstream, 'one address spoken in two protocols gets two pools');
  t.not(h2c?.health, plain?.health, 'and two health records');
  t.equal(connectionIdentity({ host: '10.0.0.1', port: 80 }), '10.0.0.1:80', 'an HTTP/1.1 identity is unchanged');
  t.equal(connectionIdentity({ host: '10.0.0.1', port: 80, protocol: 'h2c' }), '10.0.0.1:80 h2c');
});

/** A Meridian with one service `web` on every host. */
async function meridian(t: Test, version: Record<string, unknown>, service: Record<string, unknown> = {}): Promise<TestMeridian> {
  const m = await startTestMeridian(
    { regions: EU, services: { web: { healthCheck: { interval: '200ms', timeout: '200ms' }, slowStart: '0s', ...service, versions: { stable: version } } }, routes: { web: { service: 'web' } } },
    { node: { region: 'eu-west' }, proxy: { debugHeaders: true } },
  );
  t.teardown(() => m.close());
  return m;
}

interface EndpointView {
  address: string;
  protocol?: string;
  health: string;
  reason: string;
}

async function endpointState(m: TestMeridian): Promise<EndpointView> {
  const state = await getJson<{ services: Record<string, { versions: Record<string, { regions: Record<string, { endpoints: EndpointView[] }> }> }> }>(m.adminPort, '/api/v1/state');
  const ep = state.services.web?.versions.stable?.regions['eu-west']?.endpoints[0];
  if (ep === undefined) throw new Error('no endpoint in the state');
  return ep;
}

t.test('an HTTP/2-only upstream over TLS (h2): GET and POST through Meridian on one multiplexed connection, health checks over h2', async (t) => {
  const up = await startH2Upstream('h2', { cert: certs.cert, key: certs.key });
  t.teardown(() => up.close());
  const m = await meridian(t, { protocol: 'h2', tls: { ca: certs.caFile }, endpoints: { 'eu-west': [`https://localhost:${up.port}`] } });
  const got = await send(m.port, { path: '/hello?x=1', headers: { host: 'site.test' } });
  t.equal(got.status, 200, 'a GET is served');
  t.equal(got.text, 'h2 GET /hello?x=1', 'the upstream answered over HTTP/2');
  t.equal(up.seen.at(-1)?.headers[':authority'], 'site.test', "the client's host is the :authority");
  t.equal(up.seen.at(-1)?.headers['x-forwarded-proto'], 'http');
  const posted = await send(m.port, { method: 'POST', path: '/p', body: 'a body for h2', headers: { 'content-type': 'text/plain' } });
  t.equal(posted.status, 200);
  t.equal(up.seen.at(-1)?.body.toString(), 'a body for h2', 'the request body went as DATA frames');
  const before = up.sessions;
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => send(m.port, { path: `/m/${i}` })));
  t.same(many.map((r) => r.status), Array(20).fill(200), 'concurrent requests are all served');
  t.ok(up.sessions - before <= 1, 'on the connection already open (at most one more): requests are multiplexed, not one connection each');
  await waitFor(() => up.healthChecks >= 2, 'health checks over h2');
  const ep = await endpointState(m);
  t.equal(ep.health, 'healthy', 'health checks to an h2-only upstream succeed');
  t.equal(ep.protocol, 'h2', 'the admin state shows the protocol');
});

t.test('an h2c upstream: plaintext HTTP/2 by prior knowledge, checked over h2c', async (t) => {
  const up = await startH2Upstream('h2c');
  t.teardown(() => up.close());
  const m = await meridian(t, { endpoints: { 'eu-west': [{ address: `127.0.0.1:${up.port}`, protocol: 'h2c' }] } });
  const got = await send(m.port, { path: '/plain' });
  t.equal(got.status, 200);
  t.equal(got.text, 'h2c GET /plain');
  await waitFor(() => up.healthChecks >= 2, 'health checks over h2c');
  t.equal((await endpointState(m)).health, 'healthy');
  await up.close();
  const down = await send(m.port, { path: '/gone' });
  t.equal(down.status, 502, 'a stopped h2c upstream is a connect failure like any other');
  t.equal(down.headers['x-meridian-error'], 'upstream-connect-failed');
});

t.test('protocol h2 to an upstream that speaks only HTTP/1.1 over TLS: 502 upstream-tls-failed, never a pipelined HTTP/1.1 connection', async (t) => {
  const up = await startTlsUpstream({ cert: certs.cert, key: certs.key }, 'h1-only');
  t.teardown(() => up.close());
  const m = await meridian(t, { protocol: 'h2', tls: { ca: certs.caFile }, endpoints: { 'eu-west': [`https://127.0.0.1:${up.port}`] } });
  const res = await send(m.port, { path: '/' });
  t.equal(res.status, 502);
  t.equal(res.headers['x-meridian-error'], 'upstream-tls-failed', 'the ALPN refusal fails the connection before anything is sent');
  await waitFor(async () => (await endpointState(m)).health === 'unhealthy', 'the health check fails too');
  t.match((await endpointState(m)).reason, /tls/, 'with a TLS reason');
  t.equal(up.requests, 0, 'no request, proxied or health check, ever reached the HTTP/1.1 upstream');
});
