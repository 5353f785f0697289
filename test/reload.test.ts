import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError } from '../src/config/issues.js';
import { getJson, send } from './helpers/client.js';
import { simpleRoutes, startTestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream } from './helpers/upstream.js';

interface State {
  revision: number;
  source: string;
  stale: boolean;
  ready: boolean;
  errors: { key: string; message: string }[];
}

t.test('a routes-file edit applies live; an invalid edit is rejected and the table in force stays', async (t) => {
  const a = await startUpstream('a');
  const b = await startUpstream('b');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [a.address] }));
  t.teardown(async () => {
    await m.close();
    await a.kill();
    await b.kill();
  });
  const served = async (): Promise<string> => String((await send(m.port)).headers['x-upstream']);
  t.equal(await served(), 'a');
  const first = await getJson<State>(m.adminPort, '/api/v1/state');
  t.equal(first.source, 'file');
  t.equal(first.revision, 1);

  await m.writeRoutes(simpleRoutes({ 'eu-west': [b.address] }));
  await waitFor(async () => (await served()) === 'b', 'the edit to reach the data plane');
  t.equal((await getJson<State>(m.adminPort, '/api/v1/state')).revision, 2, 'each applied edit bumps the revision');

  await m.writeRoutes('regions: [unclosed\n');
  const syntax = await waitFor(async () => {
    const s = await getJson<State>(m.adminPort, '/api/v1/state');
    return s.errors.length > 0 ? s : null;
  }, 'the YAML error in state');
  t.match(syntax.errors[0]?.key, /routes\.yaml:\d+:\d+$/, 'a syntax error names file, line and column');
  t.match(syntax.errors[0]?.message, /invalid YAML/);
  t.equal(await served(), 'b', 'the table in force keeps serving');
  t.equal(syntax.revision, 2);

  const bad = simpleRoutes({ 'eu-west': [b.address] }) as { services: { web: Record<string, unknown> } };
  bad.services.web.retries = { atempts: 3 };
  bad.services.web.timeouts = { connect: '5 s' };
  await m.writeRoutes(bad);
  const schema = await waitFor(async () => {
    const s = await getJson<State>(m.adminPort, '/api/v1/state');
    return s.errors.some((e) => e.key === 'services.web.retries.atempts') ? s : null;
  }, 'the schema errors in state');
  t.same(
    schema.errors.map((e) => `${e.key}: ${e.message}`).sort(),
    [
      'routes.web.service: service "web" is disabled by its own errors',
      'services.web.retries.atempts: unknown field',
      'services.web.timeouts.connect: "5 s" is not a duration such as "250ms", "5s" or "2m"',
    ],
    'every problem is listed at once, each at its path',
  );
  t.equal(await served(), 'b');
  const metrics = (await send(m.adminPort, { path: '/metrics' })).text;
  t.match(metrics, /meridian_config_reloads_total\{source="file",result="rejected"\} [2-9]/);
  t.match(metrics, /meridian_config_revision 2/);

  await m.writeRoutes(simpleRoutes({ 'eu-west': [a.address] }));
  await waitFor(async () => (await served()) === 'a', 'the fixed file to apply');
  const fixed = await getJson<State>(m.adminPort, '/api/v1/state');
  t.same(fixed.errors, [], 'a clean apply clears the errors');
  t.equal(fixed.revision, 3);

  await m.writeRoutes(simpleRoutes({ 'eu-west': [a.address] }));
  await writeFile(join(m.dir, 'unrelated.txt'), 'x');
  await waitFor(async () => /result="unchanged"\} [1-9]/.test((await send(m.adminPort, { path: '/metrics' })).text), 'the same bytes rewritten', 4_000).catch(() => null);
  t.equal((await getJson<State>(m.adminPort, '/api/v1/state')).revision, 3, 'rewriting the same table does not bump the revision');
});

t.test('the last-good snapshot is written after each apply and used at boot when the file is unusable', async (t) => {
  const a = await startUpstream('a');
  t.teardown(() => a.kill());
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [a.address] }));
  const snapshotPath = join(m.dir, 'last-good.json');
  const snapshot = await waitFor(async () => JSON.parse(await readFile(snapshotPath, 'utf8')) as Record<string, unknown>, 'the snapshot file');
  t.equal(snapshot.format, 1);
  t.equal(snapshot.source, 'file');
  t.equal(snapshot.revision, 1);
  t.same(snapshot.document, simpleRoutes({ 'eu-west': [a.address] }), 'the snapshot holds the document as applied');
  await m.close();

  // A snapshot stands in only for its own source: another routes file cannot boot from it.
  const other = await startTestMeridian('services: {web: {versions: {}}}\n', { store: { snapshot: snapshotPath } }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(other instanceof ConfigError, 'a snapshot of another routes file is not used');

  // Break the routes file, then boot again on it: the snapshot is used.
  const again = await startTestMeridian('services: {web: {versions: {}}}\n', {}, { dir: m.dir });
  t.teardown(() => again.close());
  const state = await getJson<State>(again.adminPort, '/api/v1/state');
  t.equal(state.source, 'snapshot');
  t.equal(state.stale, true);
  t.equal(state.ready, true, 'a node serving its snapshot is ready');
  t.ok(state.errors.some((e) => e.key === 'services.web.versions'), 'the reason the file was refused is shown');
  t.equal((await send(again.adminPort, { path: '/readyz' })).status, 200);
  t.equal((await send(again.port)).headers['x-upstream'], 'a', 'requests are served from the snapshot');

  await again.writeRoutes(simpleRoutes({ 'eu-west': [a.address] }));
  const back = await waitFor(async () => {
    const s = await getJson<State>(again.adminPort, '/api/v1/state');
    return s.source === 'file' ? s : null;
  }, 'the repaired file to replace the snapshot');
  t.equal(back.stale, false);
  t.same(back.errors, []);
});

t.test('boot fails with every problem listed when the file is unusable and there is no snapshot', async (t) => {
  const err = await startTestMeridian({ services: { web: { versions: { stable: { endpoints: { nowhere: ['127.0.0.1:1'] } } } } }, routes: { r: { service: 'missing' } } }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof ConfigError, 'a ConfigError is thrown');
  const messages = (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).sort();
  t.same(messages, ['routes.r.service: unknown service "missing"', 'services.web.versions.stable.endpoints.nowhere: unknown region "nowhere"']);
});

t.test('endpoints removed from the table get their pools closed', async (t) => {
  const a = await startUpstream('a');
  const b = await startUpstream('b');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [a.address] }));
  t.teardown(async () => {
    await m.close();
    await a.kill();
    await b.kill();
  });
  await send(m.port);
  t.ok(a.connections() > 0, 'a keep-alive connection to the upstream is open');
  await m.writeRoutes(simpleRoutes({ 'eu-west': [b.address] }));
  await waitFor(async () => (await send(m.port)).headers['x-upstream'] === 'b', 'the swap');
  await waitFor(() => a.connections() === 0, 'the removed upstream connections to close');
  t.equal(a.connections(), 0);
});
