import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { routingIssues } from '../src/cli/validate.js';
import { formatIssue } from '../src/config/issues.js';
import { DocumentDecoder, encodeDocument } from '../src/config/routing-lines.js';
import { validateRoutingObjects } from '../src/config/routing-validate.js';
import { UNKNOWN_ORIGIN } from '../src/geo/origin.js';
import { DEFAULT_UPSTREAM_TLS } from '../src/net/upstream-tls.js';
import { servingRuntime } from '../src/proxy/runtime.js';
import { UpstreamRegistry } from '../src/proxy/upstream.js';
import { compileTable, unverifiedEndpoints } from '../src/routing/compile.js';
import type { Endpoint, RoutingTable } from '../src/routing/table.js';
import { compileClean, groupOf, testHealthRegistry, versionOf } from './helpers/table.js';
import { makeTestCertificates, type TestCertificates } from './helpers/tls.js';

const EU = { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } };

/** A document with one service per entry, each one version `stable` in eu-west. */
function table(services: Record<string, Record<string, unknown>>): Record<string, unknown> {
  return { regions: EU, services: Object.fromEntries(Object.entries(services).map(([name, version]) => [name, { versions: { stable: version } }])), routes: {} };
}

function problems(raw: unknown): string[] {
  return routingIssues(raw)
    .issues.filter((i) => i.reason !== 'empty')
    .map(formatIssue)
    .sort();
}

function endpoints(compiled: RoutingTable, service: string): readonly Endpoint[] {
  return groupOf(versionOf(compiled, service), 'eu-west').all;
}

let certs: TestCertificates;
let notPem: string;
let badPem: string;

t.before(async () => {
  certs = await makeTestCertificates();
  notPem = join(certs.dir, 'not.pem');
  await writeFile(notPem, 'just text\n');
  badPem = join(certs.dir, 'bad.pem');
  await writeFile(badPem, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
});

t.test('bad tls blocks and endpoint URLs are errors at their field', async (t) => {
  const at = (service: string, rest: string): string => `services.${service}.versions.stable.${rest}`;
  const missing = join(certs.dir, 'missing.pem');
  const found = problems(
    table({
      a: { endpoints: { 'eu-west': ['https://a.internal:443'] }, tls: { ca: missing } },
      b: { endpoints: { 'eu-west': ['https://a.internal:443'] }, tls: { ca: certs.dir } },
      c: { endpoints: { 'eu-west': ['https://a.internal:443'] }, tls: { ca: notPem } },
      d: { endpoints: { 'eu-west': ['https://a.internal:443'] }, tls: { ca: badPem } },
      e: { endpoints: { 'eu-west': ['https://a.internal:443'] }, tls: { ca: '', serverName: '10.0.0.1', verify: 'no', key: 'x' } },
      f: { endpoints: { 'eu-west': ['https://a.internal:443'] }, tls: { serverName: 'bad name' } },
      g: { endpoints: { 'eu-west': ['https://a.internal:443'] }, tls: 'yes' },
      h: { endpoints: { 'eu-west': ['http://a.internal:80', 'a.internal:81'] }, tls: { verify: true } },
      i: { endpoints: { 'eu-west': [{ address: 'http://a.internal:80', tls: {} }, { address: 'https://a.internal:443', tls: { cert: 'x.pem' } }] } },
      j: { endpoints: { 'eu-west': ['https://a.internal:443/api', 'https://a.internal', 'https://user@a.internal:443', 'HTTPS://a.internal:443'] } },
      k: { endpoints: { 'eu-west': ['http://a.internal:80', 'a.internal:80', 'https://a.internal:80', { address: 'https://a.internal:80', tls: { verify: false } }] } },
    }),
  );
  const unparsable = at('d', 'tls.ca');
  t.match(found.find((p) => p.startsWith(unparsable)), new RegExp(`: "${badPem}": certificate 1 cannot be parsed \\(.+\\)$`), 'an unparsable certificate says which one');
  t.same(
    found.filter((p) => !p.startsWith(unparsable)),
    [
      `${at('a', 'tls.ca')}: cannot read the CA file: ENOENT: no such file or directory, stat '${missing}'`,
      `${at('b', 'tls.ca')}: "${certs.dir}" is not a file`,
      `${at('c', 'tls.ca')}: "${notPem}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
      `${at('e', 'tls.ca')}: expected the path of a PEM file`,
      `${at('e', 'tls.key')}: unknown field`,
      `${at('e', 'tls.serverName')}: an IP address cannot be a TLS server name: leave serverName out and the certificate is checked for the endpoint's IP`,
      `${at('e', 'tls.verify')}: Invalid input: expected boolean, received string`,
      `${at('f', 'tls.serverName')}: "bad name" is not a host name such as api.internal`,
      `${at('g', 'tls')}: Invalid input: expected object, received string`,
      `${at('h', 'endpoints.eu-west[0]')}: an http:// endpoint is plaintext, but its version has a tls block: write https://host:port (or host:port), or remove the tls block`,
      `${at('i', 'endpoints.eu-west[0]')}: an http:// endpoint is plaintext, but it has a tls block: write https://host:port (or host:port), or remove the tls block`,
      `${at('i', 'endpoints.eu-west[1].tls.cert')}: unknown field`,
      `${at('j', 'endpoints.eu-west[0]')}: "https://a.internal:443/api": an endpoint URL has no path, query or user part (write https://host:port)`,
      `${at('j', 'endpoints.eu-west[1]')}: "a.internal" has no port (expected host:port)`,
      `${at('j', 'endpoints.eu-west[2]')}: "https://user@a.internal:443": an endpoint URL has no path, query or user part (write https://host:port)`,
      `${at('k', 'endpoints.eu-west[1]')}: duplicate endpoint a.internal:80`,
      `${at('k', 'endpoints.eu-west[3]')}: duplicate endpoint https://a.internal:80`,
    ].sort(),
    'HTTPS:// is a scheme like https://; http:// and a bare address are one endpoint, https:// on the same address another',
  );
});

t.test('verify: false with a ca, https:// alone, and a bare address under a tls block are valid', async (t) => {
  const compiled = compileClean(
    table({
      a: { endpoints: { 'eu-west': ['https://a.internal:443'] }, tls: { ca: certs.caFile, verify: false } },
      b: { endpoints: { 'eu-west': ['https://10.0.0.1:443', 'http://10.0.0.1:80', '10.0.0.2:80'] } },
      c: { endpoints: { 'eu-west': ['10.0.0.3:8443', { address: 'https://10.0.0.4:8443', tls: { serverName: 'API.Internal' } }] }, tls: { ca: certs.caFile } },
    }),
  );
  const [a] = endpoints(compiled, 'a');
  t.match(a, { key: 'https://a.internal:443', tls: { caFile: certs.caFile, verify: false, serverName: null } });
  t.match(a?.tls?.caPem, /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/, 'the CA is read when the table is validated');
  t.match(a?.tls?.caDigest, /^[0-9a-f]{64}$/);
  const [tls, http, bare] = endpoints(compiled, 'b');
  t.equal(tls?.tls, DEFAULT_UPSTREAM_TLS, 'https:// alone: the default roots, the endpoint name, verification on');
  t.match([http?.key, http?.tls, bare?.key, bare?.tls], ['10.0.0.1:80', null, '10.0.0.2:80', null], 'http:// is plaintext, as a bare address');
  const [inherited, own] = endpoints(compiled, 'c');
  t.match(inherited, { key: 'https://10.0.0.3:8443', tls: { caFile: certs.caFile } }, 'a bare address under a version tls block speaks TLS');
  t.match(own?.tls, { caFile: null, serverName: 'api.internal' }, "an endpoint's own block replaces its version's");
  t.same(unverifiedEndpoints(compiled), ['https://a.internal:443']);
});

t.test('pools and health records are keyed by everything that changes the connection', async (t) => {
  const raw = table({
    a: { endpoints: { 'eu-west': ['127.0.0.1:9000', 'https://127.0.0.1:9000'] } },
    b: { endpoints: { 'eu-west': ['https://127.0.0.1:9000', { address: 'https://127.0.0.1:9001', tls: { ca: certs.caFile } }] } },
    c: { endpoints: { 'eu-west': [{ address: 'https://127.0.0.1:9000', tls: { ca: certs.caFile } }, { address: 'https://127.0.0.1:9001', tls: { ca: certs.otherCaFile } }] } },
    d: { endpoints: { 'eu-west': [{ address: 'https://127.0.0.1:9000', tls: { verify: false } }, { address: 'https://127.0.0.1:9001', tls: { ca: certs.caFile } }] } },
  });
  const { doc, issues } = validateRoutingObjects(raw);
  t.same(issues, []);
  const upstreams = new UpstreamRegistry();
  t.teardown(() => upstreams.closeAll(true));
  const compiled = compileTable(doc, { revision: 1, source: 'file', node: UNKNOWN_ORIGIN, bindings: servingRuntime(upstreams, testHealthRegistry()) });
  t.same(compiled.issues, []);
  const [plain, tls] = endpoints(compiled.table, 'a');
  const [sameTls, caOn9001] = endpoints(compiled.table, 'b');
  const [caOn9000, otherCaOn9001] = endpoints(compiled.table, 'c');
  const [unverified, caOn9001Again] = endpoints(compiled.table, 'd');
  t.not(plain?.upstream, tls?.upstream, 'plaintext and TLS on one address never share a pool');
  t.not(plain?.health, tls?.health, 'nor a health record');
  t.equal(tls?.upstream, sameTls?.upstream, 'the same TLS settings share the pool across services');
  t.equal(tls?.health, sameTls?.health);
  t.not(tls?.upstream, caOn9000?.upstream, 'another CA: another pool');
  t.not(caOn9001?.upstream, otherCaOn9001?.upstream);
  t.not(tls?.upstream, unverified?.upstream, 'verify: false: another pool');
  t.equal(caOn9001?.upstream, caOn9001Again?.upstream, 'the same CA file: the same pool');
  t.match(otherCaOn9001?.health.key, /^https:\/\/127\.0\.0\.1:9001 ca=[0-9a-f]{16} \/healthz/);
  t.match(unverified?.health.key, /^https:\/\/127\.0\.0\.1:9000 verify=off /);
});

t.test('the CA travels with the validated document (as workers receive it) without the file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-tls-doc-'));
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, `# a comment before the certificate\n${certs.cert}`);
  const { doc, issues } = validateRoutingObjects(table({ a: { endpoints: { 'eu-west': ['https://a.internal:443'] }, tls: { ca: caFile } } }));
  t.same(issues, []);
  const decoded = await new DocumentDecoder().decode(encodeDocument(doc));
  const upstreams = new UpstreamRegistry();
  const compiled = compileTable(decoded, { revision: 1, source: 'file', node: UNKNOWN_ORIGIN, bindings: servingRuntime(upstreams, testHealthRegistry()) });
  t.same(compiled.issues, []);
  t.equal(endpoints(compiled.table, 'a')[0]?.tls?.caPem, certs.cert, 'only the certificates are kept');
});
